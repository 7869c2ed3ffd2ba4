"""The findings: what each chapter computes from the tasks' raw tables, and its verdict rules.

One module per chapter (or per group of chapters), each turning a task's tidy table
(``ropelib.tasks``) or captured attention (``ropelib.core.probe``) into the chapter's summary
tables, figures and "Results at a glance" rows. For finding 1 and the glance page:

  perplexity       Fig. 1: perplexity-vs-length curves, extrapolation limit per method
  attention        Fig. 2 / Table 1: attention captured as distance profiles, JS and gap statistics
  attention_verdicts  Table 1's orderings, Fig. 2's claim, the paper's numbers beside ours
  attention_plots  the Fig. 2 panels drawn from ``attention``'s profiles
  glance           the "Results at a glance" page: every chapter's glance rows, formatted

The other chapters' modules live here too (e.g. ``length_sweep``, ``organism_report``);
each says in its own docstring which chapter it serves. Every verdict is computed by a
rule written in the function's docstring and repeated in the glance row's ``rule`` column.
Not here: running models on text (``tasks``, ``probe``) or generic statistics
(``metrics``, ``stats``).
"""
