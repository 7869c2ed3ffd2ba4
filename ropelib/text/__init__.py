"""Text the organism is trained and evaluated on, and the prompts built from it.

  corpus     Python's standard library, split train/dev/test by file (near-duplicates kept together)
  tokenizer  the organism's byte-level tokenizer, with the slice of the Hugging Face tokenizer API the tasks use
  haystack   needle-in-a-haystack prompts, shared by training and evaluation

Not here: the tasks that score a model on them (``ropelib.tasks``).
"""
