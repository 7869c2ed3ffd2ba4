"""Chapter ``perplexity``: the paper's Fig. 1, all of it here.

Perplexity against evaluation length for every extension, on the positions each length
adds, and each method's extrapolation limit.

  analysis  tables and the figure
  verdicts  extrapolation limits at both CI ends, the rules and glance rows

Reference: Zhong et al. (2024), arXiv:2406.13282, Sec. 2 and Fig. 1.
"""
