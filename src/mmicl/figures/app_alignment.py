"""Appendix: M2 dimension against the alignment of projected M2 features with the M1 embeddings
(linear CKA, mean L2 distance) and against ICL accuracy (paper: CKA 0.16 → 0.07 as D2 goes
32 → 512). A further grid with an `encoder` key (App. E2: a pretrained encoder at D2 = 512;
paper: CKA 0.07 -> 0.10, L2 2.15 -> 1.95) is drawn as one marker per encoder beside the line."""

import matplotlib.pyplot as plt
import pandas as pd

from mmicl.figures.common import grids_of, mean_std, seeds_note, select

PANELS = (("cka", "linear CKA (projected M2 vs M1)"), ("l2", "mean L2 distance"),
          ("ic_accuracy", "ICL accuracy (novel classes)"))


ENCODER_LABEL = "pretrained {} encoder"


def make(df, sweep, defaults):
    grid, *encoder_grids = grids_of(sweep)
    x = next(iter(grid))
    sub = select(df, defaults, sweep, grid)
    sub = sub[sub.split == "IC"]
    rows = [select(df, defaults, sweep, g) for g in encoder_grids if "encoder" in g]
    enc = pd.concat(rows) if rows else sub.iloc[:0]
    enc = enc[enc.split == "IC"]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 3.2), constrained_layout=True)
    for ax, (value, label) in zip(axes, PANELS):
        stats = mean_std(sub, [x], value=value).sort_values(x)
        ax.errorbar(stats[x], stats["mean"], yerr=stats["std"], marker="o", capsize=3)
        for name, part in enc.groupby("encoder", sort=True):
            estats = mean_std(part, [x], value=value).sort_values(x)
            ax.plot(estats[x], estats["mean"], marker="*", markersize=11, linestyle="none",
                    label=ENCODER_LABEL.format(name))
        if len(enc) and value == PANELS[0][0]:
            ax.legend(fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xticks(stats[x], [f"{v:g}" for v in stats[x]])
        ax.set_xlabel("M2 dimension D2")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"M2 dimension and alignment ({seeds_note(sub)}; held-out IC sequences)",
                 fontsize=10)
    return fig
