"""Chapter ``model-organism`` (chapter 0): what the tiny LLaMA models are, and whether they
behave like the paper's LLaMA-2 where the findings need it. No figure of the paper.

  analysis  measurements on the checkpoints and the chapter's three checks (premises)
  report    tables, checks and the figure, gathered from the organism's own modules and manifests
"""
