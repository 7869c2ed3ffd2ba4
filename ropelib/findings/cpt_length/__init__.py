"""Chapter ``cpt-length``: the paper's Figs. 4e-f (finding 3), all of it here.

Does continual pretraining at a longer length lower attention entropy beyond L0 and
help retrieval there? Two NTK checkpoints with the same token budget, one trained at a
short and one at a long length, over the needle grid (``findings.sweep``).

  analysis  who is compared, checked before any work, and the optional retraining
  verdicts  the estimands (registry 3.1-3.3) and the glance rows, graded by ``findings.claims``

Reference: Zhong et al. (2024), arXiv:2406.13282, Sec. 3.3.
"""
