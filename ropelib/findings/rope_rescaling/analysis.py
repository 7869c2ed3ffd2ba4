"""Tables and figure of the chapter "How each extension rescales RoPE".

Every number comes from :mod:`ropelib.core.extensions` (i.e. transformers' rope registry);
this module only tabulates, rounds and draws them:

  frequency_table(...)       tidy DataFrame: method, pair, wavelength, ratio to plain RoPE
  wavelength_summary(table)  the same, a few pairs wide: one column per method
  pairs_beyond(table, L, s)  per method: how many pairs never finish a period within L
  plot_wavelengths(...)      seaborn figure: wavelength per pair (log y) and ratio to RoPE
  yarn_temperature(...)      YaRN's cos/sin scale and its square on the attention logits

Dynamic NTK depends on the current length; it is shown at the extended length s * L
(at or below L it is plain RoPE). Numbers are rounded to 4 significant digits so that
the printed outputs are identical from run to run (nbval compares them).
Not here: any RoPE formula of our own, models, or attention.
"""

from __future__ import annotations

import math
import warnings

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

# transformers imports tqdm.auto, which warns inside Jupyter when ipywidgets is absent;
# the warning would print an install path into the page (different on every machine)
warnings.filterwarnings("ignore", message="IProgress not found")

from ropelib.core import extensions, methods  # noqa: E402
from ropelib.prose import DIGITS, significant

SHOWN = methods.named(variant_of="")  # each rescaling once (ntk100 is NTK at a fixed base)


def _dynamic_at(head_dim: int, base: float, factor: float, train_length: int, length: int):
    """Dynamic NTK's inverse frequencies at sequence length ``length`` (transformers' own formula)."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = extensions.rope_parameters("dynamic_ntk", base, factor, train_length, head_dim=head_dim)
    config = LlamaConfig(hidden_size=head_dim, num_attention_heads=1, head_dim=head_dim,
                         max_position_embeddings=train_length, rope_parameters=params)
    inv_freq, _ = ROPE_INIT_FUNCTIONS["dynamic"](config, None, seq_len=length)
    return inv_freq


def frequency_table(head_dim: int, base: float, train_length: int, factor: float) -> pd.DataFrame:
    """One row per (method, pair j): inverse frequency, wavelength in tokens, ratio to RoPE's."""
    rows = []
    rope_waves = extensions.wavelengths(extensions.frequencies("rope", head_dim, base)[0])
    for method in SHOWN:
        if method == "dynamic_ntk":
            inv_freq = _dynamic_at(head_dim, base, factor, train_length, int(factor * train_length))
        else:
            inv_freq, _ = extensions.frequencies(method, head_dim, base, factor, train_length)
        waves = extensions.wavelengths(inv_freq)
        for pair, (theta, wave, rope_wave) in enumerate(zip(inv_freq.tolist(), waves.tolist(), rope_waves.tolist())):
            rows.append({
                "method": method,
                "pair": pair,
                "theta": significant(theta),
                "wavelength": significant(wave),
                "ratio to rope": significant(wave / rope_wave),
            })
    return pd.DataFrame(rows)


def shown(x: float) -> str:
    """``x`` to 4 significant digits as text: 6.283, 251.3, 19,870 (no spurious trailing zeros)."""
    x = significant(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.{DIGITS}g}"


def wavelength_summary(table: pd.DataFrame, rows: int = 8) -> pd.DataFrame:
    """Wavelengths (as text) of about ``rows`` evenly spaced pairs and the last, one column per method."""
    wide = table.pivot(index="pair", columns="method", values="wavelength")[list(SHOWN)]
    step = max(1, len(wide) // rows)
    keep = sorted(set(range(0, len(wide), step)) | {len(wide) - 1})
    wide = wide.loc[keep].map(shown)
    wide.columns.name = None
    return wide


def pairs_beyond(table: pd.DataFrame, train_length: int, factor: float) -> pd.DataFrame:
    """Per method: pairs whose wavelength exceeds L (and s * L), as a count and a fraction."""
    grouped = table.groupby("method", sort=False)["wavelength"]
    result = pd.DataFrame({
        "pairs": grouped.size(),
        "wavelength > L": grouped.apply(lambda w: int((w > train_length).sum())),
        "fraction > L": grouped.apply(lambda w: significant(float((w > train_length).mean()))),
        "wavelength > s*L": grouped.apply(lambda w: int((w > factor * train_length).sum())),
        "longest / L": grouped.apply(lambda w: significant(float(w.max()) / train_length)),
    })
    result.index.name = "method"
    return result


def plot_wavelengths(table: pd.DataFrame, train_length: int, factor: float, label: str):
    """Left: wavelength of each pair per method (log y) with L and s*L marked. Right: ratio to RoPE."""
    sns.set_theme(style="whitegrid", context="notebook")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    sns.lineplot(data=table, x="pair", y="wavelength", hue="method", style="method", ax=left)
    left.set_yscale("log")
    left.axhline(train_length, color="black", linestyle="--", linewidth=1)
    left.axhline(factor * train_length, color="grey", linestyle=":", linewidth=1)
    left.text(0, train_length * 1.15, f"training length L = {train_length}", fontsize=9)
    left.text(0, factor * train_length * 1.15, f"s * L = {significant(factor * train_length):g}", fontsize=9, color="grey")
    left.set(xlabel="frequency pair j (0 = fastest rotation)", ylabel="wavelength 2π/θ_j (tokens, log scale)",
             title=f"{label}: wavelength per pair")
    sns.lineplot(data=table, x="pair", y="ratio to rope", hue="method", style="method", ax=right, legend=False)
    right.axhline(factor, color="grey", linestyle=":", linewidth=1)
    right.set(xlabel="frequency pair j (0 = fastest rotation)", ylabel="wavelength / plain RoPE wavelength",
              title=f"{label}: stretch relative to RoPE (s = {significant(factor):g})")
    return figure


def yarn_temperature(head_dim: int, base: float, train_length: int, factor: float) -> dict:
    """YaRN's scale on cos/sin (from transformers) and the resulting factor on the logits."""
    _, scaling = extensions.frequencies("yarn", head_dim, base, factor, train_length)
    return {
        "scale factor s": significant(factor),
        "cos/sin scale (transformers)": significant(scaling),
        "0.1 ln s + 1 (paper)": significant(0.1 * math.log(factor) + 1 if factor > 1 else 1.0),
        "logit scale (0.1 ln s + 1)^2": significant(scaling**2),
    }


def effective_bases(head_dim: int, base: float, train_length: int, factor: float) -> pd.DataFrame:
    """The base b' each NTK-style method really uses, read back from transformers' frequencies.

    theta_1 = b'^(-2/d), so b' = theta_1^(-d/2). NTK-aware: b * s^(d/(d-2)); Code Llama's NTK
    (``ntk100``): 100 b; Dynamic NTK at length l: b * (s * l / L - (s - 1))^(d/(d-2)), so called
    with factor s it reaches b * (s^2 - s + 1)^(d/(d-2)) at l = s * L, a much larger base than
    NTK-aware at the same s. Shown at L, 2L and s * L, as it is, rather than renamed.
    """
    def read_back(inv_freq) -> float:
        return float(inv_freq[1]) ** (-head_dim / 2)

    rows = [(method, name, "any", read_back(extensions.frequencies(method, head_dim, base, factor, train_length)[0]))
            for method, name in (("ntk", "NTK-aware"), ("ntk100", "Code Llama (100 b)"))]
    for length in sorted({train_length, 2 * train_length, int(factor * train_length)}):
        rows.append(("dynamic_ntk", "Dynamic NTK", f"{length:,}",
                     read_back(_dynamic_at(head_dim, base, factor, train_length, length))))
    frame = pd.DataFrame(rows, columns=["method", "name", "at length", "base b'"])
    frame["b' / b"] = frame["base b'"] / base
    return frame.assign(**{c: frame[c].map(significant) for c in ("base b'", "b' / b")})
