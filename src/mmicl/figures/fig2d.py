"""Fig. 2d: layer-1 and layer-2 attention of trained APE and RoPE models on the ICL set.

Mean attention probabilities over IC sequences (and seeds); the query row is the last token.
A previous-token head shows as the sub-diagonal in layer 1, an induction head as the last row
attending to the label tokens of matching items in layer 2.
"""

import matplotlib.pyplot as plt
import numpy as np

from mmicl.figures.common import grids_of, select, seeds_note, with_variant


def token_names(T: int) -> list[str]:
    n = (T - 1) // 2
    names = [f"{kind}{i + 1}" for i in range(n) for kind in ("x", "y")]
    return names + ["xq"]


def make(df, sweep, defaults):
    df = with_variant(select(df, defaults, sweep, grids_of(sweep)[0]))
    df = df[df["head"] == 0]
    variants = list(dict.fromkeys(df.sort_values(["pe", "rope_impl"])["variant"]))
    layers = sorted(df["layer"].unique())
    fig, axes = plt.subplots(len(variants), len(layers), squeeze=False,
                             figsize=(3.3 * len(layers), 3.1 * len(variants)),
                             constrained_layout=True)
    im = None
    for i, variant in enumerate(variants):
        for j, layer in enumerate(layers):
            part = df[(df.variant == variant) & (df.layer == layer)]
            mat = part.groupby(["query", "key"])["weight"].mean().unstack().to_numpy()
            ax = axes[i, j]
            im = ax.imshow(np.where(np.isnan(mat), 0, mat), vmin=0, vmax=1, cmap="magma")
            names = token_names(mat.shape[0])
            ax.set_xticks(range(len(names)), names, fontsize=5, rotation=90)
            ax.set_yticks(range(len(names)), names, fontsize=5)
            ax.set_title(f"{variant}, layer {layer}", fontsize=9)
            ax.set_xlabel("key")
            ax.set_ylabel("query")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="attention probability")
    fig.suptitle(f"Fig. 2d: attention on the ICL set, head 0 ({seeds_note(df)})", fontsize=10)
    return fig
