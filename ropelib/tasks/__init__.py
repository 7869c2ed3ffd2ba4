"""The paper's two benchmark tasks, for any causal LM + tokenizer from ``models.load``:
``perplexity`` (Fig. 1) and ``needle`` (Fig. 4)."""
