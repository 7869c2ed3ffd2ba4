"""The paper's science, with no knowledge of files, checkpoints or pages.

Everything here works on any LLaMA-architecture ``transformers`` model and imports nothing
else of ropelib (a test walks the imports). Modules, independent first:

  methods        the RoPE extensions' registry: one entry per method (rescaling, rope type, options, flags)
  geometry       RoPE wavelengths: which rotary pairs complete a turn within L0
  extensions     a registry entry onto transformers' rope registry: frequencies, the switch of a model
  metrics        entropy, distance-binned attention mass, Jensen-Shannon divergence
  stats          AUROC, Wilson and bootstrap intervals, permutation tests, confound controls
  memory         will a forward pass fit: memory and time from the config alone
  probe          attention rows for chosen queries (and every generated token) without the L x L matrix
  interventions  scoped, weight-free changes to attention sharpness (log-length scaling, temperature)

Not here: text and tokenisation (``ropelib.text``), checkpoints (``ropelib.models``),
what a chapter concludes (``ropelib.findings``).
"""
