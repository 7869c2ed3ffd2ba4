"""Checkpoints: naming, checking, loading, and what a chapter compares.

Modules, independent first:

  real       the real pretrained models' registry (one entry each: find, verify, prepare, caveats)
  sources    a parameter's model source (organism name, real model or local Hugging Face directory), checked
             without torch; which model a page measures
  manifest   the one reader of an organism checkpoint's ``manifest.json``, and the judge of its retrieval gate
  organism   the tiny LLaMA configs of the model organism
  load       saving and loading checkpoints (organism and Hugging Face), onto a device
  variants   "method:source" strings turned into ready models
  lineup     what a chapter compares, from its ``model`` parameter

Not here: training the organism (``ropelib.training``), the RoPE switch itself
(``ropelib.core.extensions``).
"""
