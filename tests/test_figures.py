"""Figure modules on synthetic tidy tables (two seeds): selection, aggregation, rendering."""

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mmicl import config as mcfg
from mmicl.figures import FIGURE_STAGE, FIGURES, REGRESSION_FIGURES, SOURCES, figure_module
from mmicl.figures.common import mean_std, save, select

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tier():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tier"] = "smoke"
    return mcfg.tier_config(cfg)


def synthetic_stage2_table(tier, figure, seeds=(0, 1)):
    rows = []
    for p1, p2 in mcfg.stage2_points(tier, figure):
        params = {**p2, **{f"stage1.{k}": v for k, v in p1.items()}}
        params["stage1.D"] = mcfg.content_dim(p1)
        for seed in seeds:
            base = {**params, "seed": seed, "run": "r", "stage1_run": "s"}
            if SOURCES[figure] == "interventions":
                for name in ("full", "ph_knockout", "ih_knockout", "zero_m2", "zero_m1"):
                    rows.append({**base, "intervention": name, "split": "IC", "loss": 1.0,
                                 "accuracy": 0.9 if name == "full" else 0.1 + 0.01 * seed})
            elif SOURCES[figure] == "alignment":
                for split in ("IC", "Test"):
                    rows.append({**base, "split": split, "cka": 8 / params["D2"], "l2": 1.5,
                                 "projected_norm": 1.0, "m1_norm": 1.0, "ic_accuracy": 0.8})
            else:
                for split in ("train", "Test", "IC", "IC2", "IW"):
                    acc = min(1.0, np.log2(params["K2"]) / 13 + 0.05 * seed)
                    rows.append({**base, "split": split, "iteration": 20, "loss": 1.0,
                                 "accuracy": acc})
    return pd.DataFrame(rows)


def figure_defaults(tier, figure):
    if FIGURE_STAGE[figure] == 1:
        return tier["stage1"]
    return {**tier["stage2"], **{f"stage1.{k}": v for k, v in tier["stage1"].items()}}


def synthetic_indicators(family, seeds=(0, 1), runs=("r",), iterations=(0, 10, 20)):
    """Rows like `mmicl indicators` + collect: indicators rise with accuracy."""
    names = ["prev_token_1", "prev_token_2", "induction_strength", "tila", "tla", "tla_ref"]
    names += ["tiia"] if family == "unimodal" else ["tiia_m1", "tiia_m2"]
    depth = "n_layers" if family == "unimodal" else "stage1.n_layers"
    rows = []
    for r, run in enumerate(runs):
        for seed in seeds:
            for it in iterations:
                acc = (it / iterations[-1]) * (r + 1) / len(runs) * (0.9 + 0.05 * seed)
                base = {"family": family, "run": run, "seed": seed, "iteration": it,
                        "split": "IC", "acc_IC": acc, "acc_IW": 1 - acc, "acc_Test": 1.0,
                        "acc_IC2": acc, depth: 2}
                if family == "multimodal":
                    base |= {"stage1_run": "s", "early_fusion": False}
                rows += [{**base, "layer": layer, "head": 0, "indicator": name,
                          "value": acc * (0.5 + 0.2 * layer) + 0.01 * k}
                         for layer in (1, 2) for k, name in enumerate(names)]
                rows.append({**base, "layer": 0, "head": -1, "indicator": "cla", "value": acc})
    return pd.DataFrame(rows)


def synthetic_table(tier, figure, seeds=(0, 1)):
    """Rows shaped like `mmicl collect` output, accuracy a known function of K and the seed."""
    if figure == "fig6":
        return pd.concat([synthetic_indicators(f, seeds) for f in ("unimodal", "multimodal")])
    if figure in REGRESSION_FIGURES:
        from mmicl.analysis.regression import RegressionConfig, regression_tables

        runs = tuple(f"r{i}" for i in range(4))
        tables = {f: synthetic_indicators(f, seeds, runs) for f in ("unimodal", "multimodal")}
        return regression_tables(tables, RegressionConfig(trees=10, search_trees=5, folds=2))
    if FIGURE_STAGE[figure] == 2:
        return synthetic_stage2_table(tier, figure, seeds)
    rows = []
    for params in mcfg.sweep_points(tier, figure):
        params = {**params, "D": mcfg.content_dim(params)}
        rid = mcfg.run_id(params | {"D": tier["stage1"]["D"]}, tier["stage1"])
        for seed in seeds:
            if SOURCES[figure] == "attention":
                T = 2 * params["N"] + 1
                for layer in (1, 2):
                    for q in range(T):
                        for k in range(q + 1):
                            rows.append({**params, "run": rid, "seed": seed, "split": "IC",
                                         "layer": layer, "head": 0, "query": q, "key": k,
                                         "weight": 1.0 / (q + 1)})
            else:
                for split in ("train", "Test", "IC", "IC2", "IW"):
                    acc = min(1.0, np.log2(params["K"]) / 13 + 0.05 * seed)
                    rows.append({**params, "run": rid, "seed": seed, "split": split,
                                 "iteration": 20, "loss": 1.0, "accuracy": acc})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("figure", FIGURES)
def test_every_figure_renders(tier, figure, tmp_path):
    df = synthetic_table(tier, figure)
    fig = figure_module(figure).make(df, tier["figures"][figure], figure_defaults(tier, figure))
    titles = [fig._suptitle.get_text() if fig._suptitle else ""] + [a.get_title() for a in fig.axes]
    assert fig.axes
    if figure not in REGRESSION_FIGURES:  # regression figures pool seeds as separate runs
        assert any("2 seeds" in t for t in titles)
    save(fig, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").stat().st_size > 1000
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_mean_std_over_seeds():
    df = pd.DataFrame({"K": [64, 64, 128, 128], "accuracy": [0.2, 0.4, 0.9, 0.9]})
    out = mean_std(df, ["K"]).set_index("K")
    assert out.loc[64, "mean"] == pytest.approx(0.3)
    assert out.loc[64, "std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert out.loc[128, "std"] == 0 and out.loc[128, "count"] == 2


def test_select_keeps_only_the_points_of_one_grid(tier):
    sweep = tier["figures"]["app_data_effects"]
    df = synthetic_table(tier, "app_data_effects")
    b_grid = next(g for g in sweep["grid"] if "B" in g)
    picked = select(df, tier["stage1"], sweep, b_grid)
    assert set(picked.B) == set(b_grid["B"])
    assert (picked.K == sweep["fixed"]["K"]).all()
    assert (picked.eps == tier["stage1"]["eps"]).all() and (picked.alpha == tier["stage1"]["alpha"]).all()


def test_heatmap_needs_two_data_axes(tier):
    sweep = copy.deepcopy(tier["figures"]["fig2c"])
    sweep["grid"] = [{"pe": ["ape"], "K": [64, 128]}]
    with pytest.raises(ValueError, match="two data keys"):
        figure_module("fig2c").make(synthetic_table(tier, "fig2c"), sweep, tier["stage1"])


def test_table2_rows_and_markdown(tier):
    module = figure_module("table2")
    df = synthetic_table(tier, "table2")
    rows = module.table(df, tier["figures"]["table2"], figure_defaults(tier, "table2"))
    assert list(rows.intervention) == ["full model", "PH knockout (layer-1 head)",
                                       "IH knockout (layer-2 head)", "M2 zeroed", "M1 zeroed"]
    assert rows.ic_accuracy_mean[0] == pytest.approx(0.9)
    assert rows.ic_accuracy_mean[1] == pytest.approx(0.105)          # mean of 0.10 and 0.11
    assert rows.seeds.tolist() == [2] * 5
    md = module.markdown(rows)
    assert "| full model | 0.900 ± 0.000 | 2 | 0.970 ± 0.025 |" in md
    assert "| M1 zeroed |" in md and "0.063 |" in md


def test_table1_rows_rank_correlations_and_carry_paper_values(tier):
    df = synthetic_table(tier, "table1")
    rows = figure_module("table1").table(df, {}, {})
    uni = rows[(rows.family == "unimodal") & (rows.quantity == "pearson")]
    assert list(uni["rank"]) == list(range(1, len(uni) + 1))
    assert (uni.ours_all.abs().diff().dropna() <= 1e-9).all()  # sorted by |r|
    assert uni.set_index("feature").at["prev_token_1_1", "paper"] == 0.72
    assert uni.set_index("feature").at["prev_token_1_1", "name"] == "PHStrength^(1)_1"
    assert {"r2", "r2_pooled", "subset_1"} <= set(rows.quantity)
    text = figure_module("table1").markdown(rows)
    assert "PHStrength^(1)_1" in text and "| 0.72 |" in text and "R² (mean over folds)" in text


def test_fig6_curves_take_the_strongest_head():
    df = synthetic_indicators("unimodal", seeds=(0,))
    extra = df[df.indicator == "induction_strength"].assign(head=1, value=5.0)
    curves = figure_module("fig6").curves(pd.concat([df, extra]))
    ind = curves[curves.series == "induction_strength@2"]
    assert (ind.value == 5.0).all()
    assert set(curves.series) >= {"acc_IC@None", "cla@None", "prev_token_1@1"}

