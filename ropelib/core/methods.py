"""The RoPE extensions by name: the one table every other module reads.

Light on purpose (no torch, no transformers): ``ropelib.models.sources`` checks a
parameter's method names before any kernel starts, and ``ropelib.core.extensions`` maps
each name onto transformers' rope registry.
"""

# RoPE extensions, in the order the book shows them
METHODS = ("rope", "pi", "ntk", "ntk100", "yarn", "dynamic_ntk", "llama3")
DISPLAY = {"rope": "RoPE", "pi": "PI", "ntk": "NTK", "ntk100": "NTK x100 base", "yarn": "YaRN",
           "dynamic_ntk": "Dynamic NTK", "llama3": "Llama-3"}
