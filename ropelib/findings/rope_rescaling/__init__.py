"""Chapter ``rope-rescaling``: how each extension rescales RoPE's rotary frequencies (the
background of the paper's Sec. 2; no figure of the paper shows it).

  analysis  per-pair wavelengths before and after each extension (``ropelib.core.geometry``,
            ``ropelib.core.extensions``), tables and the figure
"""
