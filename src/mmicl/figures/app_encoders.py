"""Appendix E1: M2 encoders (MLP, 1-D CNN, transformer on segments), pretrained or random,
frozen or trainable, against the plain projector: IC and IW accuracy. Separates the quality of
the M2 representation from the optimisation of the encoder.

Table: the Stage-2 columns plus `encoder` (mlp | cnn | transformer; `none` = the plain
projector), `encoder_pretrained` and `freeze_encoder`. The sweep's grid lists the encoder keys;
the baseline rows (encoder = none) are selected with the same fixed/default keys."""

import matplotlib.pyplot as plt
import numpy as np

from mmicl.figures.common import SPLIT_TITLES, grids_of, mean_std, seeds_note, select

ENCODER_KEYS = ("encoder", "encoder_pretrained", "freeze_encoder")
ENCODER_LABELS = {"mlp": "MLP", "cnn": "1-D CNN", "transformer": "transformer"}
VARIANTS = ((True, True, "pretrained, frozen"), (True, False, "pretrained, trainable"),
            (False, True, "random, frozen"), (False, False, "random, trainable"))
BASELINE_LABEL = "projector only (no encoder)"


def _truthy(values):
    return values.map(lambda v: v in (True, 1, "True", "true"))


def make(df, sweep, defaults):
    (grid,) = grids_of(sweep)
    if set(grid) != set(ENCODER_KEYS):
        raise ValueError(f"app_encoders grid must list exactly {ENCODER_KEYS}; got {list(grid)}")
    sub = select(df, defaults, sweep, grid)
    base = select(df[df.encoder == "none"], defaults, {"fixed": sweep.get("fixed", {})}, {})
    encoders = [e for e in grid["encoder"] if e in set(sub.encoder)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    width = 0.8 / len(VARIANTS)
    for ax, split in zip(axes, ("IC", "IW")):
        part = sub[sub.split == split]
        for k, (pretrained, frozen, label) in enumerate(VARIANTS):
            rows = part[(_truthy(part.encoder_pretrained) == pretrained)
                        & (_truthy(part.freeze_encoder) == frozen)]
            stats = mean_std(rows, ["encoder"]).set_index("encoder").reindex(encoders)
            xs = np.arange(len(encoders)) + (k - (len(VARIANTS) - 1) / 2) * width
            ax.bar(xs, stats["mean"], width, yerr=stats["std"], capsize=2, label=label)
        b = base[base.split == split]["accuracy"]
        if len(b):
            ax.axhline(b.mean(), color="black", linestyle="--", label=BASELINE_LABEL)
            ax.axhspan(b.mean() - b.std(ddof=1 if len(b) > 1 else 0),
                       b.mean() + b.std(ddof=1 if len(b) > 1 else 0), color="gray", alpha=0.2)
        ax.set_xticks(range(len(encoders)), [ENCODER_LABELS.get(e, e) for e in encoders])
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(SPLIT_TITLES[split])
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=7)
    fig.suptitle(f"M2 encoders: representation vs optimisation ({seeds_note(sub)})", fontsize=10)
    return fig
