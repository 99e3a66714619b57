"""What every figure shows: the numbers drawn (lines and their bands, heatmap cells and their
annotations, bars and their error bars, scatter points) read back out of the matplotlib Figure
and compared with values computed by hand from the synthetic tables of tests/figure_data.py
(two seeds; accuracy a known function of every swept key, the split and the seed)."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.container import BarContainer, ErrorbarContainer

import figure_data as fd
from figure_data import (expected, heatmap, panel, panels, parse_note, plotted_lines, point,
                         titled)
from mmicl import plan
from mmicl.analysis.regression import paper_name
from mmicl.figures import FIGURES, SOURCES, figure_module
from mmicl.figures.common import PARAM_LABELS, mean_std, select

ROOT = Path(__file__).resolve().parents[1]
IC_TITLE, IW_TITLE = "ICL accuracy (novel classes)", "IWL accuracy (in-weights)"
SPLIT_ROWS = (("IC", IC_TITLE), ("IW", IW_TITLE))
# Legend text of each position-encoding variant, and the parameters its runs have.
VARIANTS = {
    "APE": {"pe": "ape"},
    "RoPE (reference)": {"pe": "rope", "rope_impl": "reference"},
    "RoPE (standard)": {"pe": "rope", "rope_impl": "standard"},
    "ALiBi": {"pe": "alibi"},
    "APE+RoPE (hybrid) (reference)": {"pe": "hybrid", "rope_impl": "reference"},
}
EXACT = 1e-12  # the drawn values are the means themselves


@pytest.fixture(scope="module")
def tier():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tier"] = "smoke"
    # a Mini-ImageNet root that exists, so the tier keeps app_miniimagenet (no data is read)
    cfg["tiers"]["smoke"].setdefault("images", {})["mini_imagenet_root"] = str(ROOT)
    return plan.tier_config(cfg)


@pytest.fixture(scope="module")
def regression_df():
    """The regression table of synthetic indicator runs (random forests: built once)."""
    return fd.regression_table()


def grids(tier, figure):
    return plan.runs.grids_of(tier["figures"][figure])


# ---------------------------------------------------------------------------------------------
# checks shared by the figures drawn with the same helper


def check_lines(ax, tier, figure, split, x, xs, series, **fixed):
    """`ax` draws one line per legend label of `series` (label -> parameters of its runs): at
    every x of the grid the mean over seeds of `split` accuracy, and a band of ± the std."""
    lines = plotted_lines(ax)
    assert set(lines) == set(series)
    xs = sorted(xs)
    for label, params in series.items():
        stats = np.array([expected(point(tier, figure, **{**fixed, **params, x: v}), split)
                          for v in xs])
        mean, std = stats[:, 0], stats[:, 1]
        got = lines[label]
        np.testing.assert_allclose(got["x"], xs, rtol=0, atol=EXACT)
        np.testing.assert_allclose(got["y"], mean, rtol=0, atol=EXACT)
        np.testing.assert_allclose(got["lo"], mean - std, rtol=0, atol=EXACT)
        np.testing.assert_allclose(got["hi"], mean + std, rtol=0, atol=EXACT)
        assert (std > 0).all()  # two seeds that differ: a band to check
    assert ax.get_xlabel() == PARAM_LABELS[x]
    assert ax.get_ylabel() == dict(SPLIT_ROWS)[split]


def check_heatmap(ax, tier, figure, split, rows, cols, **fixed):
    """`ax` shows mean `split` accuracy over seeds with `rows` on the y axis and `cols` on the x
    axis, every cell annotated with its mean and ± std (two decimals)."""
    grid = next(g for g in grids(tier, figure) if rows in g and cols in g)
    hm = heatmap(ax)
    assert hm["rows"] == sorted(grid[rows]) and hm["cols"] == sorted(grid[cols])
    assert hm["array"].shape == (len(grid[rows]), len(grid[cols]))
    assert set(hm["notes"]) == {(i, j) for i in range(len(hm["rows"]))
                                for j in range(len(hm["cols"]))}
    for i, r in enumerate(hm["rows"]):
        for j, c in enumerate(hm["cols"]):
            mean, std = expected(point(tier, figure, **{**fixed, rows: r, cols: c}), split)
            assert hm["array"][i, j] == pytest.approx(mean, abs=EXACT), (r, c)
            note_mean, note_std = parse_note(hm["notes"][i, j])
            assert abs(note_mean - mean) <= 0.005 + 1e-9, (r, c)
            assert abs(note_std - std) <= 0.005 + 1e-9, (r, c)
    assert ax.get_xlabel() == PARAM_LABELS[cols]
    assert ax.get_ylabel() == PARAM_LABELS[rows]


def check_scaling(fig, tier, figure, hue):
    """Fig. 2a/2b: IC (left) and IW (right) against K, one line per model size."""
    (grid,) = grids(tier, figure)
    series = {f"{PARAM_LABELS[hue]} = {v}": {hue: v} for v in grid[hue]}
    for col, (split, _) in enumerate(SPLIT_ROWS):
        check_lines(panel(fig, 0, col), tier, figure, split, "K", grid["K"], series)


def check_variant_heatmaps(fig, tier, figure, variants):
    """A heatmap per position-encoding variant (found by its title) and grid (one column per
    grid); K on the x axis."""
    assert len(panels(fig)) == len(variants) * len(grids(tier, figure))
    for j, grid in enumerate(grids(tier, figure)):
        (rows,) = [k for k in grid if k not in ("pe", "rope_impl", "K")]
        for variant in variants:
            ax = titled(fig, f"{variant}: {IC_TITLE}", col=j)
            check_heatmap(ax, tier, figure, "IC", rows, "K", **VARIANTS[variant])


def check_sweep_lines(fig, tier, figure, variants):
    """One column per one-key grid: IC (top) and IW (bottom) against the key, one line per
    variant."""
    series = {f"variant = {v}": VARIANTS[v] for v in variants}
    for j, grid in enumerate(grids(tier, figure)):
        (x,) = [k for k in grid if k not in ("pe", "rope_impl")]
        for i, (split, _) in enumerate(SPLIT_ROWS):
            check_lines(panel(fig, i, j), tier, figure, split, x, grid[x], series)


def check_pair_heatmaps(fig, tier, figure, cols, rows):
    """Fig. 4a-c: IC (left) and IW (right) heatmaps, the grid's first key on the x axis."""
    for j, (split, title) in enumerate(SPLIT_ROWS):
        ax = panel(fig, 0, j)
        assert ax.get_title() == title
        check_heatmap(ax, tier, figure, split, rows, cols)


def check_grouped_lines(fig, tier, figure, hue, x_key="K2", label=str):
    """One column per grid: IC (top) and IW (bottom) against K2, one line per value of the
    grid's hue key (`hue`, or the grid's other key when None)."""
    for j, grid in enumerate(grids(tier, figure)):
        (key,) = [k for k in grid if k != x_key] if hue is None else (hue,)
        series = {f"{PARAM_LABELS[key]} = {label(v)}": {key: v} for v in grid[key]}
        for i, (split, _) in enumerate(SPLIT_ROWS):
            check_lines(panel(fig, i, j), tier, figure, split, x_key, grid[x_key], series)


# ---------------------------------------------------------------------------------------------
# one check per figure


def check_fig2d(fig, tier, df):
    """Head-0 attention of each variant and layer: mean over seeds of the synthetic weights
    below the diagonal, 0 above it; token names on both axes."""
    N = tier["stage1"]["N"]
    names = [f"{kind}{i + 1}" for i in range(N) for kind in ("x", "y")] + ["xq"]
    T = 2 * N + 1
    assert len(panels(fig)) == 4
    for variant, pe in (("APE", "ape"), ("RoPE (reference)", "rope")):
        for layer in (1, 2):
            ax = titled(fig, f"{variant}, layer {layer}")
            (im,) = ax.images
            want = np.zeros((T, T))
            for q in range(T):
                for k in range(q + 1):
                    want[q, k] = np.mean([fd.attention_weight(pe, layer, s, q, k)
                                          for s in fd.SEEDS])
            np.testing.assert_allclose(np.asarray(im.get_array(), dtype=float), want,
                                       rtol=0, atol=EXACT)
            assert [t.get_text() for t in ax.get_xticklabels()] == names
            assert [t.get_text() for t in ax.get_yticklabels()] == names
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("key", "query")


PAPER_TABLE2 = (  # intervention, reading, label, the paper's mean and std (0: none given)
    ("full", "none", "full model", 0.970, 0.025),
    ("ph_knockout", "zero", "PH knockout (layer-1 head) (value mix zeroed)", 0.199, 0.005),
    ("ph_knockout", "uniform", "PH knockout (layer-1 head) (uniform attention)", 0.199, 0.005),
    ("ih_knockout", "zero", "IH knockout (layer-2 head) (value mix zeroed)", 0.062, 0.003),
    ("ih_knockout", "uniform", "IH knockout (layer-2 head) (uniform attention)", 0.062, 0.003),
    ("zero_m2", "items", "M2 zeroed (items + query)", 0.336, 0.0),
    ("zero_m1", "items", "M1 zeroed (items + query)", 0.063, 0.0),
    ("zero_m1", "tokens", "M1 zeroed (items + query + labels)", 0.063, 0.0),
)


def check_table2(fig, tier, df):
    """'ours' bars: mean ± std over seeds of each intervention's IC accuracy (as the table rounds
    them, 3 decimals); 'paper' bars: the paper's values; in the order of the tick labels."""
    ax = panel(fig, 0, 0)
    containers = {c.get_label(): fd.bars(c) for c in ax.containers if isinstance(c, BarContainer)}
    assert set(containers) == {"ours", "paper"}
    ticks = ax.get_xticks()
    assert [t.get_text() for t in ax.get_xticklabels()] == [row[2] for row in PAPER_TABLE2]
    ours = [fd.seed_stats(fd.intervention_accuracy(name, "IC", s, reading) for s in fd.SEEDS)
            for name, reading, *_ in PAPER_TABLE2]
    for label, want_mean, want_err in (
            ("ours", [m for m, _ in ours], [s for _, s in ours]),
            ("paper", [row[3] for row in PAPER_TABLE2], [row[4] for row in PAPER_TABLE2])):
        got = containers[label]
        np.testing.assert_allclose(got["lengths"], want_mean, rtol=0, atol=5e-4)
        np.testing.assert_allclose(got["err"], want_err, rtol=0, atol=5e-4)
        # bar i stands over tick i (ours left of it, the paper right of it)
        side = -1 if label == "ours" else 1
        assert (np.sign(got["centres"] - ticks) == side).all()
        assert (np.abs(got["centres"] - ticks) < 0.5).all()
    assert any(s > 0 for _, s in ours)


def check_app_alignment(fig, tier, df):
    """CKA, L2 and IC accuracy against D2 on held-out IC sequences: mean ± std over seeds;
    the pretrained-encoder grid is one star per encoder at its D2."""
    from mmicl.figures.app_alignment import ENCODER_LABEL

    grid, *encoder_grids = grids(tier, "app_alignment")
    xs = sorted(grid["D2"])
    for j, (key, label_part) in enumerate((("cka", "CKA"), ("l2", "L2"),
                                           ("ic_accuracy", "ICL accuracy"))):
        ax = panel(fig, 0, j)
        assert label_part in ax.get_ylabel()
        (c,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
        line = c.lines[0]
        stats = np.array([fd.seed_stats(fd.alignment_values(point(tier, "app_alignment", D2=d),
                                                            "IC", s)[key] for s in fd.SEEDS)
                          for d in xs])
        np.testing.assert_allclose(np.asarray(line.get_xdata(), float), xs, rtol=0, atol=EXACT)
        np.testing.assert_allclose(np.asarray(line.get_ydata(), float), stats[:, 0], rtol=0,
                                   atol=EXACT)
        (segments,) = [lc.get_segments() for lc in c.lines[2]]
        np.testing.assert_allclose([(s[1, 1] - s[0, 1]) / 2 for s in segments], stats[:, 1],
                                   rtol=0, atol=EXACT)
        assert (stats[:, 1] > 0).all()
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{d:g}" for d in xs]
        for g in encoder_grids:
            for name in g["encoder"]:
                (star,) = [ln for ln in ax.lines if ln.get_label() == ENCODER_LABEL.format(name)]
                want = [fd.seed_stats(fd.alignment_values(
                    point(tier, "app_alignment", D2=d, encoder=name), "IC", s)[key]
                    for s in fd.SEEDS)[0] for d in sorted(g["D2"])]
                np.testing.assert_allclose(np.asarray(star.get_ydata(), float), want, atol=EXACT)
    cka = np.asarray(panel(fig, 0, 0).containers[0].lines[0].get_ydata(), float)
    np.testing.assert_allclose(cka, [8 / d + 0.005 for d in xs], rtol=0, atol=EXACT)


FIG6_PANELS = (  # legend label -> (series, layer) of the synthetic indicator table
    {"IC accuracy": ("acc_IC", None), "IW accuracy": ("acc_IW", None), "CLA": ("cla", None)},
    {"PHStrength$^{(1)}_1$": ("prev_token_1", 1), "PHStrength$^{(1)}_2$": ("prev_token_1", 2),
     "PHStrength$^{(2)}_1$": ("prev_token_2", 1)},
    {"IndStrength$_2$": ("induction_strength", 2), "TLA$_2$": ("tla", 2),
     "TLA$_1$": ("tla", 1), "IndStrength$_1$": ("induction_strength", 1)},
)


def fig6_value(family, series, layer, seed, it):
    acc = fd.indicator_acc(0, 1, seed, it)
    if series == "acc_IC":
        return acc
    if series == "acc_IW":
        return 1 - acc
    if series == "cla":
        return fd.cla_value(acc)
    return max(fd.indicator_value(series, family, layer, head, 0, seed, it, 1) for head in (0, 1))


def check_fig6(fig, tier, df):
    """Each family's curves through training: per iteration the mean ± std over seeds of the
    accuracy, CLA and the indicators of the strongest head of the layer."""
    for j, (family, title) in enumerate((("unimodal", "Stage 1"), ("multimodal", "Stage 2"))):
        for i, series in enumerate(FIG6_PANELS):
            ax = panel(fig, i, j)
            assert ax.get_title().startswith(title)
            lines = plotted_lines(ax)
            assert set(lines) == set(series)
            for label, (name, layer) in series.items():
                stats = np.array([fd.seed_stats(fig6_value(family, name, layer, s, it)
                                                for s in fd.SEEDS) for it in fd.ITERATIONS])
                got = lines[label]
                np.testing.assert_allclose(got["x"], fd.ITERATIONS, rtol=0, atol=EXACT)
                np.testing.assert_allclose(got["y"], stats[:, 0], rtol=0, atol=EXACT)
                np.testing.assert_allclose(got["lo"], stats[:, 0] - stats[:, 1], atol=EXACT)
                np.testing.assert_allclose(got["hi"], stats[:, 0] + stats[:, 1], atol=EXACT)


def check_table1(fig, tier, df):
    """Per family: horizontal bars of each indicator's Pearson r (all snapshots) from the
    regression table, beside the paper's r (0 where it has none), ranked by |r| from the top;
    the title carries the forest's R^2."""
    for j, family in enumerate(("unimodal", "multimodal")):
        ax = panel(fig, 0, j)
        rows = df[(df.family == family) & (df.kind == "pearson") & (df.data == "all")]
        r = dict(zip(rows.feature, rows.value))
        paper = dict(zip(rows.feature, rows.paper.fillna(0.0)))
        order = sorted(r, key=lambda f: -abs(r[f]))
        assert len(set(np.round(np.abs(list(r.values())), 3))) > 1  # a ranking to check
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [paper_name(f) for f in order]
        containers = {c.get_label(): fd.bars(c) for c in ax.containers
                      if isinstance(c, BarContainer)}
        ticks = ax.get_yticks()
        for label, want in (("ours (all snapshots)", [r[f] for f in order]),
                            ("paper", [paper[f] for f in order])):
            got = containers[label]
            np.testing.assert_allclose(got["lengths"], want, rtol=0, atol=5e-4)  # 3 decimals
            assert (np.abs(got["centres"] - ticks) < 0.5).all()
        r2 = df[(df.family == family) & (df.kind == "r2") & (df.data == "all")].value.item()
        head, _, shown = ax.get_title().partition(", RF R² = ")
        assert head == f"{family}: Pearson r with IC accuracy"
        # two decimals of the table's 3-decimal value: off by at most 0.005 + 0.0005
        assert abs(float(shown) - r2) <= 0.0055 + 1e-9


def check_app_regression(fig, tier, df):
    """Per family: the scatter is the out-of-fold (measured, predicted) pairs of every snapshot,
    the bars the forest's importances, largest first, with the indicators' paper names."""
    for j, family in enumerate(("unimodal", "multimodal")):
        fam = df[(df.family == family) & (df.data == "all")]
        pred = fam[fam.kind == "prediction"]
        ax = panel(fig, 0, j)
        (points,) = ax.collections
        got = np.asarray(points.get_offsets(), dtype=float)
        want = pred[["measured", "predicted"]].to_numpy(dtype=float)
        assert len(got) == len(want) == len(fd.REGRESSION_RUNS) * len(fd.SEEDS) * len(
            fd.ITERATIONS)
        np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], want[np.lexsort(want.T[::-1])],
                                   rtol=0, atol=EXACT)
        r2 = fam[fam.kind == "r2"].iloc[0]
        assert ax.get_title() == (f"{family}: out-of-fold predictions\n"
                                  f"R² = {r2.value:.2f} ± {r2['std']:.2f} (grouped CV)")
        imp = fam[fam.kind == "importance"]
        order = imp.sort_values("value", ascending=False)
        ax = panel(fig, 1, j)
        (c,) = [c for c in ax.containers if isinstance(c, BarContainer)]
        np.testing.assert_allclose(fd.bars(c)["lengths"], order.value, rtol=0, atol=EXACT)
        assert [t.get_text() for t in ax.get_yticklabels()] == [paper_name(f)
                                                               for f in order.feature]
        assert len(set(order.value)) > 1


def check_app_encoders(fig, tier, df):
    """Bars: encoder x (pretrained, frozen) means per split; the dashed line is the
    projector-only run."""
    from mmicl.figures import app_encoders

    (grid,) = grids(tier, "app_encoders")
    for ax, split in zip(fig.axes[:2], ("IC", "IW")):
        drawn = {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}
        assert list(drawn) == [label for _, _, label in app_encoders.VARIANTS]
        for pre, fro, label in app_encoders.VARIANTS:
            got = fd.bars(drawn[label])
            want = [expected(point(tier, "app_encoders", encoder=e, encoder_pretrained=pre,
                                   freeze_encoder=fro), split) for e in grid["encoder"]]
            np.testing.assert_allclose(got["lengths"], [m for m, _ in want], atol=EXACT)
            np.testing.assert_allclose(got["err"], [s for _, s in want], atol=1e-9)
        (line,) = [ln for ln in ax.lines if ln.get_label() == app_encoders.BASELINE_LABEL]
        base = expected(point(tier, "app_encoders", encoder="none", encoder_pretrained=True,
                              freeze_encoder=True), split)[0]
        np.testing.assert_allclose(line.get_ydata(), [base, base], atol=EXACT)


def check_image_heatmaps(fig, tier, figure):
    """Row 0: the Gaussian Stage 2 at gaussian_K2 x B (Stage-2 defaults); row 1: the images at
    the grid's K2 x B with the figure's fixed keys; IC left, IW right."""
    sweep = tier["figures"][figure]
    (grid,) = grids(tier, figure)
    gaussian = {**fd.figure_defaults(tier, figure)}
    for row, (K2s, base) in enumerate(((sweep["gaussian_K2"], gaussian),
                                       (grid["K2"], point(tier, figure)))):
        for col, split in enumerate(("IC", "IW")):
            hm = heatmap(panel(fig, row, col))
            assert hm["cols"] == sorted(K2s) and hm["rows"] == sorted(grid["B"])
            for i, B in enumerate(hm["rows"]):
                for j, K2 in enumerate(hm["cols"]):
                    mean, _ = expected({**base, "K2": K2, "B": B}, split)
                    assert hm["array"][i, j] == pytest.approx(mean, abs=EXACT), (row, B, K2)


CHECKS = {
    "fig2a": lambda fig, tier, df: check_scaling(fig, tier, "fig2a", "n_layers"),
    "fig2b": lambda fig, tier, df: check_scaling(fig, tier, "fig2b", "n_heads"),
    "fig2c": lambda fig, tier, df: check_variant_heatmaps(fig, tier, "fig2c",
                                                          ["APE", "RoPE (reference)"]),
    "fig2d": check_fig2d,
    "app_data_effects": lambda fig, tier, df: check_sweep_lines(
        fig, tier, "app_data_effects",
        [{"ape": "APE", "rope": "RoPE (reference)"}[tier["stage1"]["pe"]]]),  # the default PE
    "app_pe_variants": lambda fig, tier, df: check_sweep_lines(
        fig, tier, "app_pe_variants",
        ["APE", "RoPE (reference)", "ALiBi", "APE+RoPE (hybrid) (reference)"]),
    "app_rope_standard": lambda fig, tier, df: check_variant_heatmaps(
        fig, tier, "app_rope_standard", ["APE", "RoPE (reference)", "RoPE (standard)"]),
    "fig4a": lambda fig, tier, df: check_pair_heatmaps(fig, tier, "fig4a", "K2", "B"),
    "fig4b": lambda fig, tier, df: check_pair_heatmaps(fig, tier, "fig4b", "eps1", "eps2"),
    "fig4c": lambda fig, tier, df: check_pair_heatmaps(fig, tier, "fig4c", "alpha1", "alpha2"),
    "fig4d": lambda fig, tier, df: check_grouped_lines(
        fig, tier, "fig4d", "early_fusion",
        label=lambda v: "early fusion" if v else "two-stage"),
    "fig5": lambda fig, tier, df: check_grouped_lines(fig, tier, "fig5", None),
    "table2": check_table2,
    "app_alignment": check_app_alignment,
    "app_projector": lambda fig, tier, df: check_grouped_lines(fig, tier, "app_projector",
                                                               "projector"),
    "app_joint_label": lambda fig, tier, df: check_grouped_lines(fig, tier, "app_joint_label",
                                                                 "G2"),
    "app_encoders": check_app_encoders,
    "app_omniglot": lambda fig, tier, df: check_image_heatmaps(fig, tier, "app_omniglot"),
    "app_miniimagenet": lambda fig, tier, df: check_image_heatmaps(fig, tier,
                                                                   "app_miniimagenet"),
    "fig6": check_fig6,
    "table1": check_table1,
    "app_regression": check_app_regression,
}


def test_every_figure_has_a_content_check():
    assert set(CHECKS) == set(FIGURES)


@pytest.mark.parametrize("figure", FIGURES)
def test_figure_shows_its_table(tier, figure, request):
    import matplotlib.pyplot as plt

    df = (request.getfixturevalue("regression_df") if SOURCES[figure] == "regression"
          else fd.synthetic_table(tier, figure))
    fig = figure_module(figure).make(df, tier["figures"][figure], fd.figure_defaults(tier, figure))
    try:
        CHECKS[figure](fig, tier, df)
        if SOURCES[figure] != "regression":  # regression figures pool seeds as separate runs
            titles = [fig.get_suptitle()] + [ax.get_title() for ax in panels(fig)]
            assert any("over 2 seeds" in t for t in titles)
        fig.canvas.draw()  # labels (mathtext) and layout render
    finally:
        plt.close(fig)


def test_synthetic_values_stay_inside_the_colour_and_axis_range(tier):
    """Nothing is clipped at 1 (the heatmaps' vmax), so the drawn values are the table's."""
    for figure in FIGURES:
        if SOURCES[figure] in ("final", "interventions"):
            acc = fd.synthetic_table(tier, figure).accuracy
            assert 0 < acc.min() and acc.max() < 1, figure


# ---------------------------------------------------------------------------------------------
# selection and aggregation


def test_mean_std_over_seeds():
    df = pd.DataFrame({"K": [64, 64, 128, 128], "accuracy": [0.2, 0.4, 0.9, 0.9]})
    out = mean_std(df, ["K"]).set_index("K")
    assert out.loc[64, "mean"] == pytest.approx(0.3)
    assert out.loc[64, "std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert out.loc[128, "std"] == 0 and out.loc[128, "count"] == 2


def test_select_keeps_only_the_points_of_one_grid(tier):
    sweep = tier["figures"]["app_data_effects"]
    df = fd.synthetic_table(tier, "app_data_effects")
    b_grid = next(g for g in sweep["grid"] if "B" in g)
    picked = select(df, tier["stage1"], sweep, b_grid)
    assert set(picked.B) == set(b_grid["B"])
    assert (picked.K == sweep["fixed"]["K"]).all()
    assert (picked.eps == tier["stage1"]["eps"]).all()
    assert (picked.alpha == tier["stage1"]["alpha"]).all()


def test_heatmap_needs_two_data_axes(tier):
    sweep = copy.deepcopy(tier["figures"]["fig2c"])
    sweep["grid"] = [{"pe": ["ape"], "K": [64, 128]}]
    with pytest.raises(ValueError, match="two data keys"):
        figure_module("fig2c").make(fd.synthetic_table(tier, "fig2c"), sweep, tier["stage1"])


# ---------------------------------------------------------------------------------------------
# tables


def test_table2_rows_and_markdown(tier):
    module = figure_module("table2")
    df = fd.synthetic_table(tier, "table2")
    rows = module.table(df, tier["figures"]["table2"], fd.figure_defaults(tier, "table2"))
    assert list(rows.intervention) == [row[2] for row in PAPER_TABLE2]  # one row per reading
    assert rows.ic_accuracy_mean[0] == pytest.approx(0.9)
    assert rows.ic_accuracy_mean[1] == pytest.approx(0.105)          # mean of 0.10 and 0.11
    assert rows.ic_accuracy_mean[2] == pytest.approx(0.405)          # the uniform reading
    assert rows.seeds.tolist() == [2] * len(PAPER_TABLE2)
    md = module.markdown(rows)
    assert "| full model | 0.900 ± 0.000 | 2 | 0.970 ± 0.025 |" in md
    assert "| M1 zeroed (items + query + labels) | 0.065 ± 0.021 | 2 | 0.063 |" in md


def test_table1_rows_rank_correlations_and_carry_paper_values(regression_df):
    rows = figure_module("table1").table(regression_df, {}, {})
    uni = rows[(rows.family == "unimodal") & (rows.quantity == "pearson")]
    assert list(uni["rank"]) == list(range(1, len(uni) + 1))
    assert (uni.ours_all.abs().diff().dropna() <= 1e-9).all()  # sorted by |r|
    assert uni.set_index("feature").at["prev_token_1_1", "paper"] == 0.72
    assert uni.set_index("feature").at["prev_token_1_1", "name"] == "PHStrength^(1)_1"
    assert {"r2", "r2_pooled", "subset_1"} <= set(rows.quantity)
    text = figure_module("table1").markdown(rows)
    assert "PHStrength^(1)_1" in text and "| 0.72 |" in text and "R² (mean over folds)" in text


def test_fig6_curves_take_the_strongest_head():
    df = fd.synthetic_indicators("unimodal", seeds=(0,))
    extra = df[df.indicator == "induction_strength"].assign(head=1, value=5.0)
    curves = figure_module("fig6").curves(pd.concat([df, extra]))
    ind = curves[curves.series == "induction_strength@2"]
    assert (ind.value == 5.0).all()
    assert set(curves.series) >= {"acc_IC@None", "cla@None", "prev_token_1@1"}
