"""Which circuit indicators predict in-context accuracy? (Table 1; protocol §6.)

The authors never released this analysis; this is our reconstruction of the paper's summary:

* data points are weight snapshots of every run of a family (``all``: every snapshot, the paper's
  likely reading given its moderate correlations) or the last snapshot of every run (``final``);
* features are the per-layer indicators (``induction_strength_2`` = IndStrength_2, layer 1-based)
  plus the model-level CLA; a multi-head layer contributes its strongest head (``max``) or the mean
  over heads; the target is IC accuracy at the same snapshot;
* Pearson r of every feature with the target;
* a random forest (scikit-learn) with cross-validation grouped by run, so that no run has
  snapshots on both sides of a fold; R^2 per fold (mean and std) and on the pooled out-of-fold
  predictions; impurity importances of the forest fitted on all points; the best 1-, 2- and
  3-indicator subsets (exhaustive pairs with small forests, then a greedy third).

Everything is seeded: one config gives one table.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

FAMILIES = ("unimodal", "multimodal")
TARGET = "acc_IC"
# Table 1 of the paper (strongest correlations; the random forest reaches R^2 >= 0.91 in both).
PAPER_PEARSON = {
    "unimodal": {"prev_token_1_1": 0.72, "cla": 0.65, "induction_strength_2": 0.61, "tla_1": 0.59},
    "multimodal": {"induction_strength_2": 0.70, "prev_token_1_1": 0.58, "tla_2": 0.56,
                   "cla": 0.02},
}
PAPER_R2 = 0.91
_PAPER_BASE = {"prev_token_1": "PHStrength^(1)", "prev_token_2": "PHStrength^(2)",
               "induction_strength": "IndStrength", "tla": "TLA", "tla_ref": "TLA_ref",
               "tila": "TILA", "tiia": "TIIA", "tiia_m1": "TIIA_M1", "tiia_m2": "TIIA_M2"}


@dataclass(frozen=True)
class RegressionConfig:
    n_layers: tuple[int, ...] = (2,)
    head_aggregate: str = "max"
    exclude_early_fusion: bool = True
    features_exclude: tuple[str, ...] = ("tla_ref",)
    trees: int = 200
    search_trees: int = 50
    max_subset: int = 3
    folds: int = 5
    seed: int = 0
    target: str = field(default=TARGET)

    def __post_init__(self):
        object.__setattr__(self, "n_layers", tuple(self.n_layers))
        object.__setattr__(self, "features_exclude", tuple(self.features_exclude))
        if self.head_aggregate not in ("max", "mean"):
            raise ValueError(f"head_aggregate={self.head_aggregate!r}; expected max or mean")
        for key in ("trees", "search_trees", "max_subset"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 1")
        if self.folds < 2:
            raise ValueError(f"folds={self.folds} must be >= 2")


def paper_name(feature: str) -> str:
    """prev_token_1_1 -> PHStrength^(1)_1; cla -> CLA."""
    if feature == "cla":
        return "CLA"
    base, _, layer = feature.rpartition("_")
    return f"{_PAPER_BASE.get(base, base)}_{layer}"


def run_key(table: pd.DataFrame) -> pd.Series:
    """One id per trained run (Stage-2 runs include their Stage-1 run) and seed."""
    key = table["run"].astype(str) + "/seed=" + table["seed"].astype(str)
    if "stage1_run" in table:
        key = table["stage1_run"].fillna("").astype(str) + "/" + key
    return key


def feature_matrix(table: pd.DataFrame, cfg: RegressionConfig, family: str) -> pd.DataFrame:
    """One row per (run, snapshot): columns group, iteration, final, target, then features."""
    depth = table["stage1.n_layers"] if family == "multimodal" else table["n_layers"]
    keep = depth.isin(cfg.n_layers)
    if family == "multimodal" and cfg.exclude_early_fusion and "early_fusion" in table:
        keep &= ~table["early_fusion"].astype(bool)
    table = table[keep]
    if table.empty:
        return pd.DataFrame(columns=["group", "iteration", "final", "target"])
    table = table.assign(group=run_key(table))
    per_head = table[table.indicator != "cla"]
    heads = (per_head.groupby(["group", "iteration", "indicator", "layer"])["value"]
             .agg(cfg.head_aggregate).reset_index())
    heads["feature"] = heads.indicator + "_" + heads.layer.astype(str)
    cla = table[table.indicator == "cla"].assign(feature="cla")
    long = pd.concat([heads[["group", "iteration", "feature", "value"]],
                      cla[["group", "iteration", "feature", "value"]]])
    wide = long.pivot_table(index=["group", "iteration"], columns="feature", values="value",
                            aggfunc="first")
    wide = wide.dropna(axis=1, how="all")
    target = table.groupby(["group", "iteration"])[cfg.target].first()
    out = wide.join(target.rename("target")).reset_index()
    out["final"] = out.iteration == out.groupby("group").iteration.transform("max")
    features = sorted(c for c in wide.columns)
    return out[["group", "iteration", "final", "target", *features]]


def feature_columns(matrix: pd.DataFrame) -> list[str]:
    return [c for c in matrix.columns if c not in ("group", "iteration", "final", "target")]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r; NaN when either side is constant (e.g. CLA saturated at 1)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / denom) if denom > 1e-12 else float("nan")


def grouped_cv(X: np.ndarray, y: np.ndarray, groups: np.ndarray, trees: int, folds: int,
               seed: int, n_jobs: int | None = None) -> tuple[list[float], np.ndarray]:
    """Random-forest R^2 per fold of a GroupKFold (no group on both sides) and the pooled
    out-of-fold predictions. n_jobs: the forests' threads (None: joblib's context)."""
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold

    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ValueError(f"grouped cross-validation needs >= 2 runs; got {n_groups}")
    predictions = np.full(len(y), np.nan)
    scores = []
    for train, test in GroupKFold(n_splits=min(folds, n_groups)).split(X, y, groups):
        forest = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=n_jobs)
        forest.fit(X[train], y[train])
        predictions[test] = forest.predict(X[test])
        scores.append(float(r2_score(y[test], predictions[test])) if len(test) > 1
                      else float("nan"))
    return scores, predictions


def _cv_r2(matrix, features, trees, cfg, n_jobs: int | None = None) -> float:
    from sklearn.metrics import r2_score

    _, pred = grouped_cv(matrix[features].to_numpy(), matrix.target.to_numpy(),
                         matrix.group.to_numpy(), trees, cfg.folds, cfg.seed, n_jobs)
    return float(r2_score(matrix.target, pred))


def best_subsets(matrix: pd.DataFrame, cfg: RegressionConfig) -> list[tuple[tuple[str, ...], float]]:
    """Best subset of each size 1..max_subset by pooled out-of-fold R^2 with `search_trees`:
    exhaustive for sizes 1 and 2, then greedy (add the best next feature to the best pair).
    The candidates are scored in parallel, one single-threaded search forest each, in the
    worker processes of joblib's context (`parallel_config(n_jobs=...)`; serial without):
    fitting small forests is bound by the GIL, so threads do not help (measured: one core
    busy either way), and every candidate's score is the same either way."""
    from joblib import Parallel, delayed

    features = [f for f in feature_columns(matrix)
                if not any(f.startswith(e + "_") or f == e for e in cfg.features_exclude)]
    best: list[tuple[tuple[str, ...], float]] = []
    candidates: list[tuple[str, ...]] = [(f,) for f in features]
    for size in range(1, min(cfg.max_subset, len(features)) + 1):
        if size == 2:
            candidates = list(itertools.combinations(features, 2))
        elif size > 2:
            base = best[-1][0]
            candidates = [base + (f,) for f in features if f not in base]
        scores = Parallel(prefer="processes")(
            delayed(_cv_r2)(matrix, list(subset), cfg.search_trees, cfg, n_jobs=1)
            for subset in candidates)
        scored = list(zip(candidates, scores))
        best.append(max(scored, key=lambda item: (item[1], item[0])))
    return best


def family_rows(matrix: pd.DataFrame, cfg: RegressionConfig, family: str) -> list[dict]:
    """Every result of one family as tidy rows (see regression_tables)."""
    from sklearn.ensemble import RandomForestRegressor

    rows: list[dict] = []
    if matrix.empty:
        return [{"family": family, "data": "all", "kind": "points", "value": 0.0}]
    features = feature_columns(matrix)
    rf_features = [f for f in features
                   if not any(f.startswith(e + "_") or f == e for e in cfg.features_exclude)]
    for data, subset in (("all", matrix), ("final", matrix[matrix.final])):
        base = {"family": family, "data": data}
        rows.append({**base, "kind": "points", "value": float(len(subset))})
        rows.append({**base, "kind": "runs", "value": float(subset.group.nunique())})
        for feature in features:
            r = pearson(subset[feature].to_numpy(), subset.target.to_numpy())
            rows.append({**base, "kind": "pearson", "feature": feature, "value": r,
                         "paper": PAPER_PEARSON[family].get(feature, np.nan)})
        if subset.group.nunique() < 2:
            continue
        X, y, groups = (subset[rf_features].to_numpy(), subset.target.to_numpy(),
                        subset.group.to_numpy())
        scores, pred = grouped_cv(X, y, groups, cfg.trees, cfg.folds, cfg.seed)
        from sklearn.metrics import r2_score

        rows.append({**base, "kind": "r2", "value": float(np.nanmean(scores)),
                     "std": float(np.nanstd(scores)), "folds": len(scores), "paper": PAPER_R2})
        rows.append({**base, "kind": "r2_pooled", "value": float(r2_score(y, pred)),
                     "paper": PAPER_R2})
        forest = RandomForestRegressor(n_estimators=cfg.trees, random_state=cfg.seed, n_jobs=None)
        forest.fit(X, y)
        rows += [{**base, "kind": "importance", "feature": f, "value": float(v)}
                 for f, v in zip(rf_features, forest.feature_importances_)]
        rows += [{**base, "kind": "prediction", "group": g, "iteration": int(it),
                  "measured": float(m), "predicted": float(p), "value": float(p - m)}
                 for g, it, m, p in zip(groups, subset.iteration, y, pred)]
        if data == "all":
            for subset_features, _ in best_subsets(subset, cfg):
                r2 = _cv_r2(subset, list(subset_features), cfg.trees, cfg)
                rows.append({**base, "kind": f"subset_{len(subset_features)}",
                             "feature": "+".join(subset_features), "value": r2,
                             "paper": PAPER_R2})
    return rows


def regression_tables(tables: Mapping[str, pd.DataFrame], cfg: RegressionConfig) -> pd.DataFrame:
    """Tidy results for every family: columns family, data (all | final), kind (points, runs,
    pearson, r2, r2_pooled, importance, subset_<k>, prediction), feature, value, paper (the
    paper's number where it has one), std/folds (r2), group/iteration/measured/predicted
    (prediction rows). The forests take their thread count from joblib's context
    (`joblib.parallel_config(n_jobs=...)`, one thread without one); the numbers do not depend
    on it."""
    rows = []
    for family in FAMILIES:
        if family in tables:
            rows += family_rows(feature_matrix(tables[family], cfg, family), cfg, family)
    out = pd.DataFrame(rows)
    for column in ("feature", "group"):
        if column not in out:
            out[column] = None
    for column in ("paper", "std", "folds", "iteration", "measured", "predicted"):
        if column not in out:
            out[column] = np.nan
    return out
