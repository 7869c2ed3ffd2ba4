"""Chapter ``model-size``: the paper's Figs. 5 and 7 and Appendices A-B, all of it here.

Does PI help a larger model more? Needle retrieval of three organism sizes, each with
and without PI continual pretraining, over lengths (``findings.sweep``).

  analysis  the comparison, the rule and the glance rows

Reference: Zhong et al. (2024), arXiv:2406.13282, Appendix A-B.
"""
