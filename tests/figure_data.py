"""Synthetic tidy tables for the figure tests, the closed-form values they were built from, and
readers that take the plotted numbers back out of a matplotlib Figure.

Every accuracy is `level(params, split) + seed * spread(params)`: a known function of the
complexity key (K, or K2 in Stage 2), of every other swept key with its own weight (so a
transposed heatmap or a swapped axis changes the numbers) and of the split; the seed term makes
the std over seeds differ from point to point. Tests compute what a figure must show from these
functions, never through the library's selection or aggregation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd

from mmicl import plan
from mmicl.figures import FIGURE_STAGE, SOURCES
from mmicl.plan.runs import STAGE2_CORE_KEYS, canonical_params, run_id
from mmicl.specs import content_dim

SEEDS = (0, 1)
SPLITS = ("train", "Test", "IC", "IC2", "IW")
SPLIT_OFFSET = {"IC": 0.0, "IW": 0.08, "IC2": 0.04, "Test": 0.12, "train": 0.16}
PE_CODE = {"ape": 0.0, "rope": 1.0, "alibi": 2.0, "hybrid": 3.0}
ENCODER_CODE = {"none": 0.0, "mlp": 1.0, "cnn": 2.0, "transformer": 3.0, "vit": 1.5}


def _key_terms(p: Mapping) -> float:
    """Each swept key adds its own amount (distinct weights: swapping two axes changes a cell)."""
    t = 0.015 * p.get("B", 0)
    # Stage 1
    t += 0.1 * p.get("eps", 0.0) + 0.03 * p.get("alpha", 0.0)
    t += 0.02 * (p.get("n_layers", 2) - 2) + 0.015 * (p.get("n_heads", 1) - 1)
    if "pe" in p:
        t += 0.02 * PE_CODE[p["pe"]]
        if p["pe"] in ("rope", "hybrid") and p.get("rope_impl") == "standard":
            t += 0.012  # rope_impl only matters where the run uses RoPE (canonical_params)
    # Stage 2
    t += 0.05 * p.get("eps1", 0.0) + 0.1 * p.get("eps2", 0.0)
    t += 0.02 * p.get("alpha1", 0.0) + 0.04 * p.get("alpha2", 0.0)
    if "D2" in p:
        t += 0.02 * math.log2(p["D2"] / 32)
    t += 0.03 * (p.get("projector") == "large") + 0.06 * bool(p.get("early_fusion", False))
    if p.get("label_mode") == "joint":
        t += 0.01 + 0.005 * p["G2"]  # G2 only matters for joint labels (canonical_params)
    t += 0.02 * (p.get("stage1.n_layers", 2) - 2) + 0.015 * (p.get("stage1.n_heads", 1) - 1)
    # M2 encoders and images (0 at the defaults: no encoder, Gaussian M2)
    t += 0.025 * ENCODER_CODE[p.get("encoder", "none")]
    if p.get("encoder", "none") != "none":
        t += 0.03 * (not p["encoder_pretrained"]) + 0.011 * (not p["freeze_encoder"])
    t += 0.05 * (p.get("m2_data", "gaussian") != "gaussian")
    return t


def complexity(p: Mapping) -> float:
    return p["K2"] if "K2" in p else p["K"]


def level(p: Mapping, split: str) -> float:
    return math.log2(complexity(p)) / 13 + _key_terms(p) + SPLIT_OFFSET[split]


def spread(p: Mapping) -> float:
    """What seed 1 adds over seed 0 (> 0, grows with the IC level)."""
    return 0.25 * (level(p, "IC") - 0.3)


def accuracy(p: Mapping, split: str, seed: int) -> float:
    return level(p, split) + seed * spread(p)


def seed_stats(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample std (ddof 1, 0 for one value), by hand."""
    v = np.asarray(list(values), dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def expected(p: Mapping, split: str, seeds=SEEDS) -> tuple[float, float]:
    """Mean and std over seeds of a grid point's accuracy."""
    return seed_stats(accuracy(p, split, s) for s in seeds)


# ---------------------------------------------------------------------------------------------
# the points a figure reads: the tier's defaults, the sweep's fixed keys, one grid assignment


def figure_defaults(tier, figure):
    if FIGURE_STAGE[figure] == 1:
        return tier["stage1"]
    return {**tier["stage2"], **{f"stage1.{k}": v for k, v in tier["stage1"].items()}}


def point(tier, figure, **assignment) -> dict:
    """Parameters of one grid point, as a run of it carries them (keys as the figure's grid)."""
    sweep = tier["figures"][figure]
    return {**figure_defaults(tier, figure), **sweep.get("fixed", {}), **assignment}


# ---------------------------------------------------------------------------------------------
# synthetic tables shaped like `mmicl collect` output


def attention_weight(pe: str, layer: int, seed: int, q: int, k: int) -> float:
    """Causal attention rows summing to 1: uniform over keys <= q, plus a previous-token share
    that differs by variant, layer and seed."""
    lam = 0.1 * layer + 0.2 * (pe == "rope") + 0.1 * seed
    prev = max(q - 1, 0)
    return (1 - lam) / (q + 1) + lam * (k == prev)


def _stage1_rows(tier, figure, seeds):
    rows = {}
    d1 = tier["stage1"]
    for params in plan.runs.stage1_points(tier, figure):
        params = canonical_params(params, d1)
        params = {**params, "D": content_dim(params)}
        rid = run_id(params | {"D": d1["D"]}, d1)
        for seed in seeds:
            base = {**params, "run": rid, "seed": seed}
            if SOURCES[figure] == "attention":
                T = 2 * params["N"] + 1
                # head 1 is in the table but the figure shows head 0: it must be filtered out
                rows[rid, seed] = [
                    {**base, "split": "IC", "layer": layer, "head": head, "query": q, "key": k,
                     "weight": attention_weight(params["pe"], layer, seed, q, k) if head == 0
                     else 0.5}
                    for layer in (1, 2) for head in (0, 1) for q in range(T) for k in range(q + 1)]
            else:
                rows[rid, seed] = [{**base, "split": split, "iteration": 20, "loss": 1.0,
                                    "accuracy": accuracy(params, split, seed)}
                                   for split in SPLITS]
    return rows


INTERVENTIONS = {  # name -> (IC accuracy of seed 0, added per seed)
    "full": (0.9, 0.0), "ph_knockout": (0.10, 0.01), "ih_knockout": (0.05, 0.02),
    "zero_m2": (0.30, 0.04), "zero_m1": (0.20, 0.03),
}
# readings of each intervention in the synthetic Table-2 rows, with an offset each (two
# readings of one intervention must stay apart in the table: one row per reading)
READINGS = {"full": {"none": 0.0}, "ph_knockout": {"zero": 0.0, "uniform": 0.3},
            "ih_knockout": {"zero": 0.0, "uniform": 0.2}, "zero_m2": {"items": 0.0},
            "zero_m1": {"items": 0.0, "tokens": -0.15}}


def intervention_accuracy(name: str, split: str, seed: int, reading: str | None = None) -> float:
    a, b = INTERVENTIONS[name]
    offset = READINGS[name][reading] if reading else 0.0
    return a + b * seed + offset if split == "IC" else 0.5 + 0.1 * seed  # IW: not in Table 2


def alignment_values(p: Mapping, split: str, seed: int) -> dict:
    if split != "IC":  # the figure reads held-out IC sequences only
        return {"cka": 0.9, "l2": 9.0, "ic_accuracy": 0.01}
    return {"cka": 8 / p["D2"] + 0.01 * seed, "l2": 1.5 + math.log2(p["D2"]) / 10 + 0.1 * seed,
            "ic_accuracy": accuracy(p, "IC", seed)}


def _stage2_rows(tier, figure, seeds):
    rows = {}
    d1, d2 = tier["stage1"], tier["stage2"]
    # the image figures' Gaussian reference runs (Stage-2 defaults at gaussian_K2 x B)
    reference = [(s.params1, s.params2) for s in
                 plan.runs.gaussian_reference(tier, figure, [0])]
    for p1, p2 in plan.runs.stage2_points(tier, figure) + reference:
        p1, p2 = canonical_params(p1, d1), canonical_params(p2, d2)
        params = {**p2, **{f"stage1.{k}": v for k, v in p1.items()}}
        params["stage1.D"] = content_dim(p1)
        ids = (run_id(p2, d2, STAGE2_CORE_KEYS), run_id(p1, d1))
        for seed in seeds:
            base = {**params, "seed": seed, "run": ids[0], "stage1_run": ids[1]}
            if SOURCES[figure] == "interventions":
                rows[ids, seed] = [
                    {**base, "intervention": name, "reading": reading, "split": split,
                     "loss": 1.0, "accuracy": intervention_accuracy(name, split, seed, reading)}
                    for split in ("IC", "IW") for name in INTERVENTIONS
                    for reading in READINGS[name]]
            elif SOURCES[figure] == "alignment":
                rows[ids, seed] = [{**base, "split": split, "projected_norm": 1.0, "m1_norm": 1.0,
                                    **alignment_values(params, split, seed)}
                                   for split in ("IC", "Test")]
            else:
                rows[ids, seed] = [{**base, "split": split, "iteration": 20, "loss": 1.0,
                                    "accuracy": accuracy(params, split, seed)}
                                   for split in SPLITS]
    return rows


# ---------------------------------------------------------------------------------------------
# circuit indicators (Fig. 6, Table 1, regression)

INDICATORS = {
    "unimodal": ["prev_token_1", "prev_token_2", "induction_strength", "tila", "tla", "tla_ref",
                 "tiia"],
    "multimodal": ["prev_token_1", "prev_token_2", "induction_strength", "tila", "tla", "tla_ref",
                   "tiia_m1", "tiia_m2"],
}
ITERATIONS = (0, 10, 20)


def indicator_acc(r: int, n_runs: int, seed: int, it: int) -> float:
    return (it / ITERATIONS[-1]) * (r + 1) / n_runs * (0.9 + 0.05 * seed)


def indicator_value(name: str, family: str, layer: int, head: int, r: int, seed: int, it: int,
                    n_runs: int) -> float:
    """Rises with accuracy, plus a deterministic wiggle (so correlations differ by indicator);
    head 1 is the stronger head of layer 2 and the weaker one of layer 1."""
    k = INDICATORS[family].index(name)
    acc = indicator_acc(r, n_runs, seed, it)
    wiggle = 0.03 * math.sin(1.7 * k + 2.3 * layer + 0.09 * it + 1.3 * r + 0.7 * seed)
    head_shift = 0.0 if head == 0 else (0.05 if layer == 2 else -0.05)
    return 0.08 + acc * (0.4 + 0.2 * layer) + 0.01 * k + wiggle + head_shift


def cla_value(acc: float) -> float:
    return 0.6 + 0.4 * acc


def synthetic_indicators(family, seeds=SEEDS, runs=("r",), iterations=ITERATIONS, heads=(0, 1)):
    """Rows like `mmicl indicators` + collect."""
    depth = "n_layers" if family == "unimodal" else "stage1.n_layers"
    rows = []
    for r, run in enumerate(runs):
        for seed in seeds:
            for it in iterations:
                acc = indicator_acc(r, len(runs), seed, it)
                base = {"family": family, "run": run, "seed": seed, "iteration": it,
                        "split": "IC", "acc_IC": acc, "acc_IW": 1 - acc, "acc_Test": 1.0,
                        "acc_IC2": acc, depth: 2}
                if family == "multimodal":
                    base |= {"stage1_run": "s", "early_fusion": False}
                rows += [{**base, "layer": layer, "head": head, "indicator": name,
                          "value": indicator_value(name, family, layer, head, r, seed, it,
                                                   len(runs))}
                         for layer in (1, 2) for head in heads for name in INDICATORS[family]]
                rows.append({**base, "layer": 0, "head": -1, "indicator": "cla",
                             "value": cla_value(acc)})
    return pd.DataFrame(rows)


REGRESSION_RUNS = tuple(f"r{i}" for i in range(4))


def regression_table(seeds=SEEDS):
    from mmicl.analysis.regression import RegressionConfig, regression_tables

    tables = {f: synthetic_indicators(f, seeds, REGRESSION_RUNS) for f in INDICATORS}
    # small forests, best single indicator only: the figures do not show the larger subsets
    cfg = RegressionConfig(trees=10, search_trees=5, max_subset=1, folds=2)
    return regression_tables(tables, cfg)


def synthetic_table(tier, figure, seeds=SEEDS):
    """The table a figure reads, one set of rows per (run, seed): a run shared by two grids of a
    sweep appears once, as `mmicl collect` gives it."""
    if figure == "fig6":
        return pd.concat([synthetic_indicators(f, seeds) for f in INDICATORS], ignore_index=True)
    if SOURCES[figure] == "regression":
        return regression_table(seeds)
    build = _stage2_rows if FIGURE_STAGE[figure] == 2 else _stage1_rows
    rows = build(tier, figure, seeds)
    return pd.DataFrame([row for part in rows.values() for row in part])


# ---------------------------------------------------------------------------------------------
# reading a Figure back


def panel(fig, row: int, col: int):
    """The subplot at (row, col) of the figure's grid (colorbars excluded)."""
    found = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"
             and ax.get_subplotspec() is not None
             and ax.get_subplotspec().rowspan.start == row
             and ax.get_subplotspec().colspan.start == col]
    assert len(found) == 1, f"no single panel at ({row}, {col})"
    return found[0]


def titled(fig, title: str, col: int | None = None):
    """The one subplot with this title (in grid column `col` when given)."""
    found = [ax for ax in panels(fig) if ax.get_title() == title
             and (col is None or ax.get_subplotspec().colspan.start == col)]
    assert len(found) == 1, f"{len(found)} panels titled {title!r}"
    return found[0]


def panels(fig):
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def band_bounds(collection, xs) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge of a fill_between polygon at each x."""
    verts = np.concatenate([p.vertices for p in collection.get_paths()])
    lo, hi = [], []
    for x in xs:
        ys = verts[np.isclose(verts[:, 0], x), 1]
        assert len(ys), f"band has no vertex at x={x}"
        lo.append(ys.min())
        hi.append(ys.max())
    return np.array(lo), np.array(hi)


def plotted_lines(ax) -> dict[str, dict]:
    """label -> {x, y, lo, hi} of every line with its error band (the i-th band of an axes belongs
    to its i-th line, drawn in the line's colour)."""
    bands = [c for c in ax.collections if type(c).__name__.endswith("PolyCollection")]
    assert len(bands) == len(ax.lines), "one error band per line"
    out = {}
    for line, band in zip(ax.lines, bands):
        assert np.allclose(band.get_facecolor()[0][:3],
                           mcolors.to_rgb(line.get_color()))
        x = np.asarray(line.get_xdata(), dtype=float)
        lo, hi = band_bounds(band, x)
        assert line.get_label() not in out, f"two lines labelled {line.get_label()!r}"
        out[line.get_label()] = {"x": x, "y": np.asarray(line.get_ydata(), dtype=float),
                                 "lo": lo, "hi": hi}
    return out


def tick_values(labels) -> list:
    out = []
    for t in labels:
        text = t.get_text().replace("\N{MINUS SIGN}", "-")
        try:
            out.append(float(text))
        except ValueError:
            out.append(text)
    return out


def heatmap(ax) -> dict:
    """The image's array with its row/column tick values and the annotation of every cell."""
    (im,) = ax.images
    arr = np.ma.filled(np.ma.asarray(im.get_array(), dtype=float), np.nan)
    assert list(ax.get_xticks()) == list(range(arr.shape[1]))
    assert list(ax.get_yticks()) == list(range(arr.shape[0]))
    notes = {}
    for t in ax.texts:
        x, y = t.get_position()
        notes[int(round(y)), int(round(x))] = t.get_text()
    return {"array": arr, "cols": tick_values(ax.get_xticklabels()),
            "rows": tick_values(ax.get_yticklabels()), "notes": notes}


def parse_note(text: str) -> tuple[float, float]:
    """'0.53\\n±0.04' -> (0.53, 0.04)."""
    mean, std = text.split("\n")
    assert std.startswith("±")
    return float(mean), float(std[1:])


def bars(container) -> dict:
    """Centres, lengths (height of vertical bars, width of horizontal ones) and error-bar half
    lengths of a BarContainer."""
    rects = list(container.patches)
    horizontal = getattr(container, "orientation", "vertical") == "horizontal"
    if horizontal:
        centres = np.array([r.get_y() + r.get_height() / 2 for r in rects])
        lengths = np.array([r.get_width() for r in rects])
    else:
        centres = np.array([r.get_x() + r.get_width() / 2 for r in rects])
        lengths = np.array([r.get_height() for r in rects])
    err = None
    if container.errorbar is not None:
        (segments,) = [c.get_segments() for c in container.errorbar.lines[2]]
        err = np.array([(s[1, 1] - s[0, 1]) / 2 for s in segments])
    return {"centres": centres, "lengths": lengths, "err": err}
