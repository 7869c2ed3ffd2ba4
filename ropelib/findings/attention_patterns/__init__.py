"""Chapter ``attention-patterns``: the paper's Figs. 2, 3 and 6 and Table 1, all of it here.

Do the extensions keep the attention pattern of the pretrained length? Attention rows of
the last tokens are captured (``ropelib.core.probe``), binned by relative distance, and
compared with Jensen-Shannon divergence to the pattern at L0 and to a natively long model.

  analysis  capture, distance profiles, JS and gap statistics, their log ratios, with bootstrap CIs
  plots     the Fig. 2 panels
  verdicts  the estimands of claims 1.3, 1.35, 1.4 and their rows by the registry's rule; the paper's numbers beside ours

Reference: Zhong et al. (2024), arXiv:2406.13282, Sec. 3.1.
"""
