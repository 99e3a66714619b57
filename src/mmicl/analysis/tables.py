"""Per-run tables gathered into one tidy table per figure, each row carrying its run's identity
(run id, seed) and every parameter as a column, so figures select rows by parameter values."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from mmicl import io
from mmicl.specs import content_dim
from mmicl.specs.run import read_spec


def run_columns(run_dir: str | Path) -> dict:
    """Identity and parameters of a run: Stage 1 its parameters (D resolved); Stage 2 its own
    parameters plus the Stage-1 ones as stage1.<key>, and the final IC / IW accuracy of the
    Stage-1 decoder it started from (stage1.IC, stage1.IW; NaN for early fusion)."""
    spec = read_spec(run_dir)
    p1 = {**spec.params1, "D": content_dim(spec.params1)}
    if spec.stage == 1:
        return {"run": spec.run, "seed": spec.seed, **p1}
    final = io.read_json(Path(run_dir) / "config.json").get("stage1_final") or {}
    return {"run": spec.run, "stage1_run": spec.stage1_run, "seed": spec.seed, **spec.params2,
            **{f"stage1.{k}": v for k, v in p1.items()},
            "stage1.IC": final.get("IC", float("nan")), "stage1.IW": final.get("IW", float("nan"))}


def run_table(path: str | Path) -> pd.DataFrame:
    """A per-run table (a file in a run folder) with the run's columns attached."""
    path = Path(path)
    return io.read_parquet(path).assign(**run_columns(path.parent))


def collect(paths: Sequence[str | Path]) -> pd.DataFrame:
    return pd.concat([run_table(p) for p in paths], ignore_index=True)
