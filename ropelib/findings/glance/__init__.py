"""Chapter ``glance``: "Results at a glance", every chapter's verdict rows on one page.

  table  the rows read from ``data/results/glance-*.csv``, formatted with their rules
  plots  the figure under the table: one panel per claim family on a shared scale, each model side by side;
         the ratio to the paper's value where it is a number; the extrapolation limits on a log axis

Not here: any rule (each chapter's ``verdicts``); which page computed a row is asked of
``ropelib.publish.plan``, which section of it of ``ropelib.publish.sections``.
"""
