"""Chapter ``needle-entropy``: the paper's Figs. 4a-d (finding 2), all of it here.

Does high attention entropy go with a failed needle? Needle trials over lengths and
depths, with the answer tokens' attention entropy; AUROC within each length, against a
length-only baseline.

  analysis  per-trial tables, AUROC with bootstrap CIs, the confound controls
  plots     the Fig. 4a-d panels
  verdicts  each claim's estimand and parts, graded by ``ropelib.findings.claims``

Reference: Zhong et al. (2024), arXiv:2406.13282, Sec. 3.2.
"""
