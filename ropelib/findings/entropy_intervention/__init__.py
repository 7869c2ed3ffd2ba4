"""Chapter ``entropy-intervention``: beyond the paper, does lowering entropy restore retrieval?

Finding 2 is a correlation; this chapter intervenes. Paired needle trials with and without
a scoped, weight-free sharpening of attention (``ropelib.core.interventions``: log-length
scaling of the logits, a temperature below 1), on the same prompts.

  analysis  the paired trials
  verdicts  4.1's parts (per model and arm), graded by ``ropelib.findings.claims``

Reference: the intervention is ours; the claim it tests is Zhong et al. (2024), Sec. 3.2.
"""
