"""Shared plotting helpers: selection of a sweep's rows, mean ± std over seeds, saving.

Figure modules take a tidy DataFrame (one row per run × seed × evaluation set, with every run
parameter as a column) plus the figure's sweep and the Stage-1 defaults, and return a Figure.
They never train.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mmicl.io import atomic_write  # noqa: E402
from mmicl.plan.runs import grids_of  # noqa: E402,F401  (figure modules import it from here)

SPLIT_TITLES = {
    "IC": "ICL accuracy (novel classes)",
    "IW": "IWL accuracy (in-weights)",
    "IC2": "swapped-label ICL accuracy",
    "Test": "accuracy on the training distribution",
}
PARAM_LABELS = {
    "K": "number of classes K",
    "K2": "M2 classes K2",
    "eps1": "M1 noise ε1",
    "eps2": "M2 noise ε2",
    "alpha1": "M1 Zipf exponent α1",
    "alpha2": "M2 Zipf exponent α2",
    "D2": "M2 dimension D2",
    "early_fusion": "training",
    "projector": "projector",
    "G2": "M2 groups G2",
    "stage1.n_layers": "decoder layers",
    "stage1.n_heads": "decoder heads",
    "B": "burstiness B",
    "eps": "within-class noise ε",
    "alpha": "Zipf exponent α",
    "n_layers": "layers",
    "n_heads": "heads",
    "pe": "position encoding",
}
PE_LABELS = {"ape": "APE", "rope": "RoPE", "alibi": "ALiBi", "hybrid": "APE+RoPE (hybrid)"}


def select(df: pd.DataFrame, defaults: Mapping, sweep: Mapping, grid: Mapping) -> pd.DataFrame:
    """Rows of the points of one grid: grid keys take their listed values, every other swept or
    fixed key its fixed/default value."""
    base = {**defaults, **sweep.get("fixed", {})}
    mask = pd.Series(True, index=df.index)
    keys = {k for g in grids_of(sweep) for k in g} | set(sweep.get("fixed", {}))
    for key in keys:
        if key not in df.columns:
            continue
        if key in grid:
            mask &= df[key].isin(grid[key])
        elif key not in ("rope_impl", "rope_theta"):
            mask &= df[key] == base[key]
    return df[mask]


def mean_std(df: pd.DataFrame, by: list[str], value: str = "accuracy") -> pd.DataFrame:
    """Mean, std (0 for one seed) and seed count of `value` per group."""
    g = df.groupby(by, dropna=False)[value]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def variant_label(row: Mapping) -> str:
    label = PE_LABELS.get(row["pe"], row["pe"])
    if row["pe"] in ("rope", "hybrid") and "rope_impl" in row:
        label += f" ({row['rope_impl']})"
    return label


def line_panel(ax, df: pd.DataFrame, x: str, hue: str | None, split: str, label_fmt=str):
    """Mean ± std over seeds of `split` accuracy against `x`, one line per `hue` value."""
    sub = df[df.split == split]
    groups = [(None, sub)] if hue is None else list(sub.groupby(hue, sort=True))
    for key, part in groups:
        stats = mean_std(part, [x]).sort_values(x)
        xs = stats[x].to_numpy(dtype=float)
        label = None if hue is None else f"{PARAM_LABELS.get(hue, hue)} = {label_fmt(key)}"
        line, = ax.plot(xs, stats["mean"], marker="o", label=label)
        ax.fill_between(xs, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                        color=line.get_color(), alpha=0.2, linewidth=0)
    if x in ("K", "K2", "D2"):
        ax.set_xscale("log", base=2)
    else:
        ax.set_xticks(sorted(sub[x].unique()))
    ax.set_xlabel(PARAM_LABELS.get(x, x))
    ax.set_ylabel(SPLIT_TITLES.get(split, split))
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if hue is not None:
        ax.legend(fontsize=7)


def heatmap_panel(ax, df: pd.DataFrame, rows: str, cols: str, split: str, title: str):
    """Mean accuracy heatmap (rows × cols), annotated with mean and ± std over seeds."""
    stats = mean_std(df[df.split == split], [rows, cols])
    mean = stats.pivot(index=rows, columns=cols, values="mean").sort_index().sort_index(axis=1)
    std = stats.pivot(index=rows, columns=cols, values="std").reindex_like(mean)
    im = ax.imshow(mean.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", origin="lower",
                   aspect="auto")
    ax.set_xticks(range(mean.shape[1]), [_tick(v) for v in mean.columns])
    ax.set_yticks(range(mean.shape[0]), [_tick(v) for v in mean.index])
    ax.set_xlabel(PARAM_LABELS.get(cols, cols))
    ax.set_ylabel(PARAM_LABELS.get(rows, rows))
    for i in range(mean.shape[0]):
        for j in range(mean.shape[1]):
            m, s = mean.iat[i, j], std.iat[i, j]
            if np.isfinite(m):
                ax.text(j, i, f"{m:.2f}\n±{s:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if m < 0.6 else "black")
    ax.set_title(title, fontsize=9)
    return im


def _tick(v) -> str:
    return f"{v:g}" if isinstance(v, (int, float, np.integer, np.floating)) else str(v)


def save(fig: plt.Figure, pdf: str | Path, png: str | Path) -> None:
    """Write the figure as PDF and PNG atomically, then close it."""
    atomic_write(pdf, lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight"))
    atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
    plt.close(fig)


def seeds_note(df: pd.DataFrame) -> str:
    n = df["seed"].nunique() if "seed" in df else 1
    return f"mean ± std over {n} seed{'s' if n != 1 else ''}"


def complexity_axis(grid: Mapping, hue: str) -> str:
    """The swept key of a scaling grid that is not the model-size key."""
    others = [k for k in grid if k != hue]
    if len(others) != 1:
        raise ValueError(f"expected a grid over {hue!r} and one data-complexity key, got {list(grid)}")
    return others[0]


def scaling_figure(df, sweep, defaults, hue: str, title: str) -> plt.Figure:
    """IC and IW accuracy against data complexity, one line per model size (Fig. 2a/2b)."""
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.3), constrained_layout=True)
    for grid in grids_of(sweep):
        x = complexity_axis(grid, hue)
        sub = select(df, defaults, sweep, grid)
        for ax, split in zip(axes, ("IC", "IW")):
            line_panel(ax, sub, x, hue, split)
    fig.suptitle(f"{title} ({seeds_note(df)})", fontsize=10)
    return fig


def with_variant(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["variant"] = [variant_label(r) for r in df[["pe", "rope_impl"]].to_dict("records")]
    return df


def heatmap_figure(df, sweep, defaults, title: str, split: str = "IC") -> plt.Figure:
    """One heatmap per (position-encoding variant × grid): K against the grid's other key."""
    grids = grids_of(sweep)
    df = with_variant(df)
    variants = list(dict.fromkeys(df.sort_values(["pe", "rope_impl"])["variant"]))
    fig, axes = plt.subplots(len(variants), len(grids), squeeze=False,
                             figsize=(3.6 * len(grids), 2.8 * len(variants)), constrained_layout=True)
    im = None
    for j, grid in enumerate(grids):
        keys = [k for k in grid if k not in ("pe", "rope_impl")]
        if len(keys) != 2:
            raise ValueError(f"heatmap grid needs two data keys besides pe/rope_impl, got {list(grid)}")
        # Data complexity K on the x axis, as in the paper, whatever the key order.
        rows, cols = sorted(keys, key=lambda k: k == "K")
        sub = select(df, defaults, sweep, grid)
        for i, variant in enumerate(variants):
            im = heatmap_panel(axes[i, j], sub[sub.variant == variant], rows, cols, split,
                               f"{variant}: {SPLIT_TITLES.get(split, split)}")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="accuracy")
    fig.suptitle(f"{title} ({seeds_note(df)})", fontsize=10)
    return fig


def sweep_lines_figure(df, sweep, defaults, title: str, hue: str | None = None) -> plt.Figure:
    """For each one-dimensional grid: IC (top) and IW (bottom) accuracy against the swept key."""
    grids = grids_of(sweep)
    fig, axes = plt.subplots(2, len(grids), squeeze=False, figsize=(3.4 * len(grids), 5.6),
                             constrained_layout=True)
    if hue == "variant":
        df = with_variant(df)
    for j, grid in enumerate(grids):
        x = [k for k in grid if k not in ("pe", "rope_impl")][0]
        sub = select(df, defaults, sweep, grid)
        for i, split in enumerate(("IC", "IW")):
            line_panel(axes[i, j], sub, x, hue, split)
    fig.suptitle(f"{title} ({seeds_note(df)})", fontsize=10)
    return fig


def pair_heatmap_figure(df, sweep, defaults, title: str,
                        splits: tuple[str, ...] = ("IC", "IW")) -> plt.Figure:
    """One two-key grid (x = first key, y = second) as IC and IW heatmaps (Fig. 4a-c)."""
    (grid,) = grids_of(sweep)
    cols, rows = list(grid)
    sub = select(df, defaults, sweep, grid)
    fig, axes = plt.subplots(1, len(splits), squeeze=False, figsize=(3.8 * len(splits), 3.2),
                             constrained_layout=True)
    im = None
    for ax, split in zip(axes[0], splits):
        im = heatmap_panel(ax, sub, rows, cols, split, SPLIT_TITLES.get(split, split))
    fig.colorbar(im, ax=axes, shrink=0.8, label="accuracy")
    fig.suptitle(f"{title} ({seeds_note(df)})", fontsize=10)
    return fig


def grouped_lines_figure(df, sweep, defaults, title: str, label_fmt=str) -> plt.Figure:
    """For each grid (a hue key and an x key): IC (top) and IW (bottom) accuracy against x."""
    grids = grids_of(sweep)
    fig, axes = plt.subplots(2, len(grids), squeeze=False, figsize=(4.2 * len(grids), 5.8),
                             constrained_layout=True)
    for j, grid in enumerate(grids):
        hue, x = list(grid)
        sub = select(df, defaults, sweep, grid)
        for i, split in enumerate(("IC", "IW")):
            line_panel(axes[i, j], sub, x, hue, split, label_fmt=label_fmt)
    fig.suptitle(f"{title} ({seeds_note(df)})", fontsize=10)
    return fig
