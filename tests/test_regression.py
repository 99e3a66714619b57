"""Correlation and random-forest regression (Table 1): hand-computed Pearson, the feature
matrix built from tidy indicator tables, grouped cross-validation, subset search."""

import numpy as np
import pandas as pd
import pytest

from mmicl.analysis.regression import (
    RegressionConfig, best_subsets, feature_matrix, grouped_cv, paper_name, pearson,
    regression_tables,
)

FAST = RegressionConfig(trees=30, search_trees=15, folds=4, max_subset=3)


def test_pearson_by_hand():
    # dx = (-1, 0, 1), dy = (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 42/9) = 9 / sqrt(84)
    assert pearson([1, 2, 3], [1, 2, 4]) == pytest.approx(9 / np.sqrt(84))
    assert pearson([3, 2, 1], [1, 2, 4]) == pytest.approx(-9 / np.sqrt(84))
    assert np.isnan(pearson([1, 1, 1], [1, 2, 4]))  # a saturated indicator (CLA = 1)


def test_paper_names():
    assert paper_name("prev_token_1_1") == "PHStrength^(1)_1"
    assert paper_name("induction_strength_2") == "IndStrength_2"
    assert paper_name("cla") == "CLA"


def tidy(runs, family="unimodal", heads=2, iterations=(0, 10, 20), n_layers=2, seed=0,
         early_fusion=False):
    """Rows like `mmicl indicators` + collect: head 1's induction strength = head 0's + 0.1."""
    rows = []
    for r in range(runs):
        for it in iterations:
            acc = it / max(iterations) * (r + 1) / runs
            base = {"family": family, "run": f"r{r}", "seed": seed, "iteration": it,
                    "acc_IC": acc, "acc_IW": 1 - acc,
                    ("stage1.n_layers" if family == "multimodal" else "n_layers"): n_layers}
            if family == "multimodal":
                base |= {"stage1_run": "s", "early_fusion": early_fusion}
            for layer in (1, 2):
                for head in range(heads):
                    rows.append({**base, "layer": layer, "head": head,
                                 "indicator": "induction_strength",
                                 "value": acc * layer + 0.1 * head})
                    rows.append({**base, "layer": layer, "head": head, "indicator": "tla_ref",
                                 "value": 0.5})
            rows.append({**base, "layer": 0, "head": -1, "indicator": "cla", "value": 1.0})
    return pd.DataFrame(rows)


def test_feature_matrix_aggregates_heads_and_marks_final_snapshots():
    m = feature_matrix(tidy(3), RegressionConfig(), "unimodal")
    assert list(m.columns) == ["group", "iteration", "final", "target", "cla",
                               "induction_strength_1", "induction_strength_2", "tla_ref_1",
                               "tla_ref_2"]
    assert len(m) == 9 and m.final.sum() == 3
    row = m[(m.group == "r2/seed=0") & (m.iteration == 20)].iloc[0]
    assert row.target == pytest.approx(1.0)
    assert row.induction_strength_2 == pytest.approx(2 * 1.0 + 0.1)  # max over the two heads
    mean = feature_matrix(tidy(3), RegressionConfig(head_aggregate="mean"), "unimodal")
    assert mean.induction_strength_2.iloc[-1] == pytest.approx(2 * 1.0 + 0.05)


def test_feature_matrix_filters_depth_and_early_fusion():
    deep = tidy(2, n_layers=4)
    assert feature_matrix(deep, RegressionConfig(), "unimodal").empty
    assert len(feature_matrix(deep, RegressionConfig(n_layers=(2, 4)), "unimodal")) == 6
    ef = tidy(2, family="multimodal", early_fusion=True)
    assert feature_matrix(ef, RegressionConfig(), "multimodal").empty
    kept = feature_matrix(ef, RegressionConfig(exclude_early_fusion=False), "multimodal")
    assert kept.group.iloc[0] == "s/r0/seed=0"


def test_grouped_cv_never_lets_a_run_leak():
    """Each run has a constant, random target and a feature that only identifies the run. With
    runs split across folds a forest can memorise the run; grouped folds cannot."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 10)
    y = rng.random(20)[groups]
    X = (groups + rng.normal(0, 0.01, groups.size))[:, None]
    scores, pred = grouped_cv(X, y, groups, trees=30, folds=5, seed=0)
    assert len(scores) == 5 and np.isfinite(pred).all()
    assert np.mean(scores) < 0.3
    # the same data with rows shuffled across folds (no grouping) is memorised
    fake_groups = np.arange(groups.size)
    leaky, _ = grouped_cv(X, y, fake_groups, trees=30, folds=5, seed=0)
    assert np.mean(leaky) > 0.9


def test_grouped_cv_needs_two_runs():
    with pytest.raises(ValueError, match="needs >= 2 runs"):
        grouped_cv(np.zeros((4, 1)), np.zeros(4), np.zeros(4), trees=5, folds=2, seed=0)


def synthetic_matrix(n_runs=16, points=12, seed=0):
    """target = a smooth function of `signal_1` (+ a little of `helper_2`); `noise_*` are noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(n_runs):
        for it in range(points):
            s, h = rng.random(), rng.random()
            rows.append({"group": f"r{r}", "iteration": it, "final": it == points - 1,
                         "target": np.clip(s ** 2 + 0.1 * h, 0, 1), "signal_1": s,
                         "helper_2": h, "noise_1": rng.random(), "noise_2": rng.random()})
    return pd.DataFrame(rows)


def test_subset_search_finds_the_informative_indicators():
    best = best_subsets(synthetic_matrix(), FAST)
    assert [len(s) for s, _ in best] == [1, 2, 3]
    assert best[0][0] == ("signal_1",)
    assert set(best[1][0]) == {"signal_1", "helper_2"}
    assert best[0][1] > 0.8 and best[1][1] >= best[0][1] - 0.02


def test_subset_search_scores_do_not_depend_on_the_thread_count():
    """The candidates are scored in parallel under joblib's context (the regression rule's
    --threads): the same subsets and the same R^2 with one thread and with two."""
    import joblib

    one = best_subsets(synthetic_matrix(), FAST)
    with joblib.parallel_config(n_jobs=2):
        two = best_subsets(synthetic_matrix(), FAST)
    assert one == two


def test_regression_tables_end_to_end():
    tables = {"unimodal": tidy(6, iterations=(0, 5, 10, 15, 20)),
              "multimodal": tidy(6, family="multimodal", iterations=(0, 5, 10, 15, 20))}
    out = regression_tables(tables, FAST)
    assert set(out.family) == {"unimodal", "multimodal"}
    uni = out[(out.family == "unimodal") & (out.data == "all")]
    assert uni[uni.kind == "points"].value.item() == 30
    assert uni[uni.kind == "runs"].value.item() == 6
    pear = uni[uni.kind == "pearson"].set_index("feature")
    assert pear.at["induction_strength_2", "value"] == pytest.approx(1.0)
    assert np.isnan(pear.at["cla", "value"])  # CLA constant at 1
    assert pear.at["induction_strength_2", "paper"] == 0.61
    assert "tla_ref_1" not in set(uni[uni.kind == "importance"].feature)  # reported, not a feature
    assert uni[uni.kind == "r2"].value.item() > 0.5
    assert len(uni[uni.kind == "prediction"]) == 30
    assert {"subset_1", "subset_2", "subset_3"} <= set(uni.kind)
    final = out[(out.family == "unimodal") & (out.data == "final")]
    assert final[final.kind == "points"].value.item() == 6
    # seeded: the same input gives the same table
    pd.testing.assert_frame_equal(out, regression_tables(tables, FAST))


def test_regression_config_errors_are_named():
    with pytest.raises(ValueError, match="head_aggregate"):
        RegressionConfig(head_aggregate="median")
    with pytest.raises(ValueError, match="folds"):
        RegressionConfig(folds=1)
