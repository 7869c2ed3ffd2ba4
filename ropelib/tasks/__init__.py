"""The paper's two benchmark tasks, for any causal LM + tokenizer from ``models.load``:
``perplexity`` (Fig. 1) and ``needle`` (Fig. 4); ``trials`` keeps a real model's trials on disk
(one document's losses, one needle cell) so a stopped page resumes."""
