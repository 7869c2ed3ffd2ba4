"""The findings: what each chapter computes from the tasks' raw tables, and its claims' estimands.

One package per chapter (NCAR CUPiD's rule: chapter X's code in ``findings/X/``), each turning a
task's tidy table (``ropelib.tasks``) or captured attention (``ropelib.core.probe``) into the
chapter's summary tables, figures and "Results at a glance" rows:

  perplexity/            Fig. 1: perplexity-vs-length curves; 1.1, 1.2, 1.25, 1.5
  attention_patterns/    Figs. 2, 3 and Table 1: distance profiles, JS and gap; 1.3, 1.35, 1.4
  needle_entropy/        Figs. 4a-d: needle trials with attention entropy; 2.1-2.5, 1.65
  cpt_length/            Figs. 4e, 4f: short- vs long-context CPT; 3.1-3.3
  entropy_intervention/  beyond the paper: lowering entropy; 4.1
  model_size/            the appendix: model size; 9.1, 9.2
  model_organism/        chapter 0: the organism's checks and premises
  rope_rescaling/        how each extension rescales RoPE's frequencies
  glance/                the "Results at a glance" page: every chapter's rows, counted and drawn

Beside them: ``claims`` (the claims registry, ``chapters/claims.yml``, and the one rule that
grades every row), ``sweep`` (length x depth needle sweeps shared by cpt_length and model_size)
and ``verdicts`` (the checkpoints' retrieval-gate lines a page prints as information).
Not here: running models on text (``tasks``, ``probe``) or generic statistics
(``metrics``, ``stats``).
"""
