"""ropelib: the library behind the ropebook chapters.

Modules, one concept each:
  extensions  RoPE extensions (rope, pi, ntk, yarn, dynamic_ntk, llama3) via transformers' rope registry
  probe       attention rows for chosen queries without the L x L matrix
  metrics     entropy, distance-binned attention, Jensen-Shannon divergence
  geometry    RoPE wavelengths and the organism's base choice
  organism    tiny LLaMA configs; training lives in `training`, loading in `models`
  tasks       perplexity-vs-length and needle-in-a-haystack
  runner/cli  the papermill run plan behind the book

Bump ``__version__`` whenever a change can alter a number in the book: the runner's
cache key includes it, so the next ``ropebook run`` re-executes every page.
"""

__version__ = "0.3.0"

import warnings as _warnings

# transformers imports tqdm.auto, which warns inside Jupyter when ipywidgets is absent; the
# warning prints a machine-specific path into the page (and nbval compares pages as text)
_warnings.filterwarnings("ignore", message="IProgress not found")


def seed_everything(seed: int = 0, threads: int | None = None) -> None:
    """Seed python, numpy and torch and fix torch's thread count (see ``ropelib.determinism``)."""
    from ropelib.determinism import seed_everything as _seed  # lazy: the CLI starts without torch

    _seed(seed, threads)
