"""Chapter ``perplexity``: the paper's Fig. 1, all of it here.

Perplexity against evaluation length for every extension, on the positions each length
adds, each method's extrapolation limit, and the verdicts.

  analysis  tables and the figure
  verdicts  claims 1.1, 1.2, 1.25, 1.5 from paired per-document losses (the registry's rule), glance rows;
            extrapolation limits at both CI ends (description)

Reference: Zhong et al. (2024), arXiv:2406.13282, Sec. 2 and Fig. 1.
"""
