"""The per-seed statistics the findings check computes from collected tables (`findings.py` holds
the findings themselves, their tests and the report): contrasts of accuracies across a sweep,
intervention gaps, indicator dynamics, regression values, and the Section-5 and image
statistics. A statistic whose data are not in the tier raises `Missing` with the reason."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mmicl.figures.common import grids_of, select


@dataclass(frozen=True)
class Settings:
    margin: float = 0.05  # minimal effect size of a trend or ordering (accuracy points)
    suffice_threshold: float = 0.9  # "K2 = 256 suffices": IC accuracy at least this
    # "PHStrength stays flat in Stage 2", scale-free: its change during Stage 2 is at most this
    # fraction of the same head's range (max - min) during Stage 1 (the decoder's own training)
    flat_ratio: float = 0.25
    knockout_reading: str = "zero"  # the reading Table 2's knockout findings use
    zeroing_reading: str = "items"  # the reading Table 2's zeroing findings use
    r2_threshold: float = 0.91  # the paper's random-forest R^2
    # Section 5 (Fig. 7): MLLM top-5 PH heads among the LLM's top-10 (paper 4; chance ~0.1)
    vlm_min_overlap: int = 3


class Missing(Exception):
    """The tier does not contain the data a finding needs."""


@dataclass(frozen=True)
class Finding:
    id: str
    source: str  # the table (figure) it reads
    statement: str  # the paper's claim
    paper_value: str  # the paper's number(s), as stated
    statistic: str  # what we compute, per seed
    test: str  # increase | decrease | at_least | at_most | all
    compute: Callable  # (tables, context, settings) -> list of per-seed values (floats)
    note: Callable | None = None  # (tables, context, settings) -> text for the table


# ------------------------------------------------------------------------------------------
# helpers on collected tables


def _grid(context: Mapping, figure: str, *keys: str) -> tuple[dict, dict, dict]:
    """The first grid of `figure` that sweeps all `keys`: (sweep, grid, defaults)."""
    try:
        sweep = context["figures"][figure]
    except KeyError:
        raise Missing(f"figure {figure} is not configured") from None
    for grid in grids_of(sweep):
        if all(k in grid and len(grid[k]) >= 2 for k in keys):
            return sweep, grid, context["defaults"][figure]
    raise Missing(f"{figure} has no grid over {', '.join(keys)} with two or more values")


def _table(tables: Mapping, name: str) -> pd.DataFrame:
    if name not in tables:
        raise Missing(f"table {name} was not produced")
    return tables[name]


def _per_seed(df: pd.DataFrame, fn: Callable[[pd.DataFrame], float]) -> list[float]:
    if df.empty:
        raise Missing("no rows for this finding")
    return [float(fn(part)) for _, part in df.groupby("seed")]


def contrast(tables, context, figure, key, split, hi=None, lo=None,
             value="accuracy") -> list[float]:
    """Per seed: accuracy at key=hi minus at key=lo (default: the grid's largest / smallest
    value), averaged over the grid's other keys."""
    sweep, grid, defaults = _grid(context, figure, key)
    df = select(_table(tables, figure), defaults, sweep, grid)
    df = df[df.split == split]
    values = sorted(grid[key], key=lambda v: (isinstance(v, str), v))
    hi = values[-1] if hi is None else hi
    lo = values[0] if lo is None else lo
    others = [k for k in grid if k != key]

    def one(part):
        a = part[part[key] == hi].groupby(others)[value].mean() if others else \
            part[part[key] == hi][value].mean()
        b = part[part[key] == lo].groupby(others)[value].mean() if others else \
            part[part[key] == lo][value].mean()
        diff = (a - b).mean() if others else a - b
        if not np.isfinite(diff):
            raise Missing(f"{figure}: no rows at {key}={hi!r} and {key}={lo!r}")
        return diff

    return _per_seed(df, one)


def _table2(tables, context, settings: "Settings | None" = None) -> pd.DataFrame:
    """IC rows of the Table-2 model (its grid's first point set), each intervention under the
    reading the findings use (settings.knockout_reading / zeroing_reading)."""
    table = _table(tables, "table2")
    if "table2" not in context["figures"]:
        raise Missing("figure table2 is not configured")
    sweep, defaults = context["figures"]["table2"], context["defaults"]["table2"]
    df = select(table, defaults, sweep, grids_of(sweep)[0])
    df = df[df.split == "IC"]
    if settings is not None and "reading" in df:
        wanted = {"full": "none", "ph_knockout": settings.knockout_reading,
                  "ih_knockout": settings.knockout_reading,
                  "zero_m1": settings.zeroing_reading, "zero_m2": settings.zeroing_reading}
        df = df[df.reading == df.intervention.map(wanted)]
    return df


def readings_holding(tables, context, hi: str, lo: str) -> list[str]:
    """The readings under which intervention `hi` leaves more IC accuracy than `lo`, mean over
    seeds (the readings of `hi` and `lo` paired by name)."""
    df = _table2(tables, context)
    if "reading" not in df:
        return []
    means = df.groupby(["intervention", "reading"]).accuracy.mean()
    out = []
    for reading in sorted(set(df.reading) - {"none"}):
        hi_reading = "none" if hi == "full" else reading  # the full model has one reading
        if (hi, hi_reading) in means and (lo, reading) in means and \
                means[hi, hi_reading] > means[lo, reading]:
            out.append(reading)
    return out


def intervention_gap(tables, context, hi: str, lo: str, settings=None) -> list[float]:
    """Per seed: IC accuracy under intervention `hi` minus under `lo` (Table 2's model)."""
    df = _table2(tables, context, settings)

    def one(part):
        a = part[part.intervention == hi].accuracy.mean()
        b = part[part.intervention == lo].accuracy.mean()
        return a - b

    return _per_seed(df, one)


def intervention_level(tables, context, name: str, settings=None) -> list[float]:
    df = _table2(tables, context, settings)
    return _per_seed(df[df.intervention == name],
                     lambda p: p.accuracy.mean())


def dynamics_change(tables, family: str, indicator: str, layer: int) -> list[float]:
    """Per seed: indicator at the last snapshot minus at the first (Fig. 6 runs; strongest
    head of the layer)."""
    df = _table(tables, "fig6")
    df = df[(df.family == family) & (df.indicator == indicator) & (df.layer == layer)]
    if df.empty:
        raise Missing(f"fig6 has no {indicator} for layer {layer} of the {family} run")

    def one(part):
        per_it = part.groupby("iteration").value.max().sort_index()
        return per_it.iloc[-1] - per_it.iloc[0]

    return _per_seed(df, one)


def dynamics_range(tables, family: str, indicator: str, layer: int) -> list[float]:
    """Per seed: max minus min of the indicator over the run's snapshots (strongest head)."""
    df = _table(tables, "fig6")
    df = df[(df.family == family) & (df.indicator == indicator) & (df.layer == layer)]
    if df.empty:
        raise Missing(f"fig6 has no {indicator} for layer {layer} of the {family} run")
    return _per_seed(df, lambda part: (lambda v: v.max() - v.min())(
        part.groupby("iteration").value.max()))


def flat_ratio(tables) -> list[float]:
    """Per seed: |change of PHStrength^(1)_1 during Stage 2| divided by the range (max - min)
    of the same head over Stage 1 (Fig. 6 follows one decoder through both stages): a
    scale-free reading of "flat", fixed before the laptop results were looked at."""
    stage2 = dynamics_change(tables, "multimodal", "prev_token_1", 1)
    stage1 = dynamics_range(tables, "unimodal", "prev_token_1", 1)
    if len(stage1) != len(stage2):
        raise Missing("fig6 has different seeds for the two stages")
    if any(scale <= 0 for scale in stage1):
        raise Missing("PHStrength^(1)_1 did not move in Stage 1, so there is no scale")
    return [abs(b) / a for a, b in zip(stage1, stage2)]


def readings_note(tables, context, hi: str, lo: str) -> str:
    try:
        readings = readings_holding(tables, context, hi, lo)
    except Missing:
        return ""
    return "ordering holds under: " + (", ".join(readings) if readings else "no reading")


def regression_value(tables, family: str, kind: str) -> list[float]:
    df = _table(tables, "regression")
    row = df[(df.family == family) & (df.kind == kind) & (df.data == "all")]
    if row.empty:
        raise Missing(f"regression has no {kind} for {family}")
    return [float(row.value.iloc[0])]  # computed over all seeds' runs together


def sign_agreement(tables, family: str) -> list[float]:
    """How many of the paper's positive strong correlates (r >= 0.5) are positive here."""
    df = _table(tables, "regression")
    p = df[(df.family == family) & (df.kind == "pearson") & (df.data == "all")]
    strong = p[p.paper >= 0.5]
    if strong.empty:
        raise Missing(f"regression has no Pearson rows with paper values for {family}")
    return [float((strong.value > 0).sum())]


# Section 5 (Fig. 7, Table 3, Fig. 8): one Qwen2.5-VL run, no seeds; the workflow passes its
# tables as vlm_overlap, vlm_knockout and vlm_lora (mmicl.vlm.pipeline). A run on a tiny random
# checkpoint (the smoke tier) is n/a: its numbers show the pipeline runs, nothing about the model.
TINY_REASON = "tiny random model (smoke tier): not Qwen2.5-VL results"


def _vlm_table(tables, name: str) -> pd.DataFrame:
    df = _table(tables, name)
    if "tiny" in df and df.tiny.any():
        raise Missing(TINY_REASON)
    if df.empty:
        raise Missing(f"table {name} is empty")
    return df


def vlm_overlap(tables) -> list[float]:
    _vlm_table(tables, "vlm_knockout")  # carries the tiny flag of the same checkpoint
    df = _table(tables, "vlm_overlap")
    row = df[(df.kind == "ph") & (df.k == 10)]
    if row.empty:
        raise Missing("vlm_overlap has no PH row at k=10")
    return [float(row.a_top_in_b.iloc[0])]


def vlm_knockout_drop(tables, condition: str, lo: str | None = None) -> list[float]:
    """Accuracy of `lo` (default: no knockout) minus accuracy with `condition` knocked out."""
    acc = _vlm_table(tables, "vlm_knockout").set_index("condition").accuracy
    if condition not in acc or (lo or "baseline") not in acc:
        raise Missing(f"the knockout table lacks {condition!r} or {lo or 'baseline'!r}")
    return [float(acc[lo or "baseline"] - acc[condition])]


def vlm_lora(tables, column: str, how: str) -> list[float]:
    """LoRA dynamics: last minus first evaluation (`change`), |change| / first (`relative`),
    or the lowest value (`min`)."""
    df = _vlm_table(tables, "vlm_lora").sort_values("step")
    if len(df) < 2:
        raise Missing("fewer than two LoRA evaluations")
    first, last = float(df[column].iloc[0]), float(df[column].iloc[-1])
    if how == "change":
        return [last - first]
    if how == "relative":
        return [abs(last - first) / abs(first) if first else float("inf")]
    return [float(df[column].min())]


def image_ic_at_small_K2(tables, context, figure: str) -> list[float]:
    """Per seed: IC accuracy of the image runs at the grid's smallest K2 and largest B."""
    sweep, grid, defaults = _grid(context, figure, "B")
    df = select(_table(tables, figure), defaults, sweep, grid)
    df = df[(df.split == "IC") & (df.m2_data != "gaussian")]
    df = df[(df.K2 == min(grid["K2"])) & (df.B == max(grid["B"]))]
    return _per_seed(df, lambda part: part.accuracy.mean())


def rope_standard_gap(tables, context) -> list[float]:
    """RoPE (standard rotation) minus APE: APE rows carry rope_impl too, so compare the standard
    RoPE rows with every APE row of the same grid point."""
    sweep, grid, defaults = _grid(context, "app_rope_standard", "pe")
    df = select(_table(tables, "app_rope_standard"), defaults, sweep, grid)
    df = df[df.split == "IC"]
    others = [k for k in grid if k not in ("pe", "rope_impl")]

    def one(part):
        rope = part[(part.pe == "rope") & (part.rope_impl == "standard")]
        ape = part[part.pe == "ape"]
        a = rope.groupby(others).accuracy.mean()
        b = ape.groupby(others).accuracy.mean()
        diff = (a - b).mean()
        if not np.isfinite(diff):
            raise Missing("app_rope_standard has no standard-RoPE and APE rows at common points")
        return diff

    return _per_seed(df, one)


def difference(a: list[float], b: list[float]) -> list[float]:
    if len(a) != len(b):
        raise Missing("the two contrasts have different seeds")
    return [x - y for x, y in zip(a, b)]
