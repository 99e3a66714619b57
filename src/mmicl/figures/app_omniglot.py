"""Appendix I1: K2 x B heatmaps of IC and IW accuracy with Omniglot characters through a ViT
encoder, beside the Gaussian Stage 2 (Fig. 4a): does a simple M2 still suffice after high-K1
pretraining when M2 is real images?

Table: the Stage-2 columns plus `m2_data` (gaussian | omniglot | glyphs | miniimagenet); the
Gaussian rows are the Fig. 4a runs. One row of panels per M2 source present, each on its own
K2 values (the sweep's grid gives K2 and B; `m2_data` may be listed to choose sources)."""

import matplotlib.pyplot as plt
import pandas as pd

from mmicl.figures.common import SPLIT_TITLES, grids_of, heatmap_panel, seeds_note, select

M2_SOURCES = {
    "gaussian": "Gaussian M2 (Stage 2)",
    "omniglot": "Omniglot through a ViT",
    "glyphs": "glyph Omniglot (stand-in) through a ViT",
    "miniimagenet": "Mini-ImageNet through a ViT",
}


def source_rows(sub, source, sweep, grid):
    """Rows of one M2 source on its K2 values: the grid's, or `gaussian_K2` of the sweep for the
    Gaussian reference (the Fig. 4a runs need not share the image K2 values)."""
    K2 = sweep.get("gaussian_K2", grid["K2"]) if source == "gaussian" else grid["K2"]
    rows = sub[sub.m2_data == source]
    return rows[rows.K2.isin(K2)]


def image_heatmaps(df, sweep, defaults, sources, title, max_K2=None):
    """Rows: the sources of `sources` present in the table; columns: IC and IW heatmaps
    (x = K2, y = B, as Fig. 4a)."""
    (grid,) = grids_of(sweep)
    if not {"K2", "B"} <= set(grid):
        raise ValueError(f"grid must list K2 and B; got {list(grid)}")
    others = {k: v for k, v in grid.items() if k != "K2"}
    images = select(df[df.m2_data != "gaussian"], defaults, {**sweep, "grid": others}, others)
    # the Gaussian reference runs are Stage-2 runs at the defaults: the figure's fixed keys
    # (image source, encoder, eps2) are not theirs
    gaussian = select(df[df.m2_data == "gaussian"], defaults, {"grid": others}, others)
    sub = pd.concat([images, gaussian])
    present = [s for s in sources if len(source_rows(sub, s, sweep, grid))]
    if not present:
        raise ValueError(f"no rows with m2_data in {list(sources)} on the grid {grid}")
    if max_K2 is not None and any(k > max_K2 for k in grid["K2"]):
        raise ValueError(f"K2 values {[k for k in grid['K2'] if k > max_K2]} exceed {max_K2} "
                         f"(the training classes of the image set)")
    fig, axes = plt.subplots(len(present), 2, squeeze=False, constrained_layout=True,
                             figsize=(8.2, 3.3 * len(present)))
    im = None
    for i, source in enumerate(present):
        rows = source_rows(sub, source, sweep, grid)
        for ax, split in zip(axes[i], ("IC", "IW")):
            im = heatmap_panel(ax, rows, "B", "K2", split,
                               f"{M2_SOURCES.get(source, source)}\n{SPLIT_TITLES[split]}")
    fig.colorbar(im, ax=axes, shrink=0.7, label="accuracy")
    fig.suptitle(f"{title} ({seeds_note(sub)})", fontsize=10)
    return fig


def make(df, sweep, defaults):
    return image_heatmaps(df, sweep, defaults, ("gaussian", "omniglot", "glyphs"),
                          "K2 x B with glyph images through a ViT")
