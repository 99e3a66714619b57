"""Appendix: M2 dimension against the alignment of projected M2 features with the M1 embeddings
(linear CKA, mean L2 distance) and against ICL accuracy (paper: CKA 0.16 → 0.07 as D2 goes
32 → 512)."""

import matplotlib.pyplot as plt

from mmicl.figures.common import grids_of, mean_std, seeds_note, select

PANELS = (("cka", "linear CKA (projected M2 vs M1)"), ("l2", "mean L2 distance"),
          ("ic_accuracy", "ICL accuracy (novel classes)"))


def make(df, sweep, defaults):
    (grid,) = grids_of(sweep)
    x = next(iter(grid))
    sub = select(df, defaults, sweep, grid)
    sub = sub[sub.split == "IC"]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 3.2), constrained_layout=True)
    for ax, (value, label) in zip(axes, PANELS):
        stats = mean_std(sub, [x], value=value).sort_values(x)
        ax.errorbar(stats[x], stats["mean"], yerr=stats["std"], marker="o", capsize=3)
        ax.set_xscale("log", base=2)
        ax.set_xticks(stats[x], [f"{v:g}" for v in stats[x]])
        ax.set_xlabel("M2 dimension D2")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(f"M2 dimension and alignment ({seeds_note(sub)}; held-out IC sequences)",
                 fontsize=10)
    return fig
