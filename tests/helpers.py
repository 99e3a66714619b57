"""Shared test helpers: tiers from the shipped config.yaml, run specs, and training a run through
the real path (worlds on disk, build_member, the loop), as a workflow job would."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from mmicl import paths, plan
from mmicl.data.worlds import make_multimodal_world, make_world, save_world
from mmicl.specs import RunSpec, resolve
from mmicl.train.loop import fit
from mmicl.train.members import RunInputs, build_member

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def base_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def tier(name: str = "smoke", results: str = "results", **overrides) -> dict:
    """A resolved tier of the shipped config, with `overrides` deep-merged into it."""
    cfg = base_config()
    cfg["tier"], cfg["results"] = name, str(results)
    cfg["tiers"][name] = plan.deep_merge(cfg["tiers"].get(name) or {}, overrides)
    plan.validate_schema(cfg, SCHEMA)
    return plan.tier_config(cfg)


def stage1(t: dict, seed: int = 0, **params) -> RunSpec:
    return plan.stage1_spec(t, {**t["stage1"], **params}, seed)


def stage2(t: dict, seed: int = 0, p1: dict | None = None, **params) -> RunSpec:
    return plan.stage2_spec(t, {**t["stage1"], **(p1 or {})}, {**t["stage2"], **params}, seed)


def inputs(t: dict, spec: RunSpec) -> RunInputs:
    """The run's input files under t["results"], written if missing (worlds; for a two-stage
    run its Stage-1 parent, trained)."""
    results = t["results"]
    key = resolve(spec).world
    for k in (key.m1, key):
        path = Path(paths.world(results, k))
        if not path.exists():
            world = (make_world(k.seed, k.K1, k.L1, k.D1) if not k.multimodal else
                     make_multimodal_world(k.seed, k.K1, k.L1, k.D1, k.K2, k.L2, k.D2))
            save_world(world, path)
    if spec.stage == 1:
        return RunInputs(paths.world(results, key))
    parent = plan.parent(t, spec)
    model = None
    if parent is not None:
        model = paths.run_file(results, parent, "model.pt")
        if not Path(model).exists():
            train(t, parent)
    return RunInputs(paths.world(results, key), paths.world(results, key.m1), model)


def member(t: dict, spec: RunSpec):
    return build_member(spec, paths.run_dir(t["results"], spec), inputs(t, spec))


def train(t: dict, spec: RunSpec, progress: bool = False):
    """Train one run alone, as a sequential cohort job does; returns (run dir, curve)."""
    m = member(t, spec)
    (curve,) = fit([m], "cpu", checkpoint=paths.resume_checkpoint(m.out_dir), progress=progress)
    return m.out_dir, curve


def copy_tier(t: dict, **changes) -> dict:
    out = copy.deepcopy(t)
    out.update(changes)
    return out


def assert_same_outputs(a_dir: Path, b_dir: Path) -> None:
    """Two runs ended bit-identical: every weight of model.pt and the whole curve."""
    import pandas as pd
    import torch

    from mmicl import io

    a, b = io.load_torch(Path(a_dir) / "model.pt"), io.load_torch(Path(b_dir) / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    pd.testing.assert_frame_equal(pd.read_parquet(Path(a_dir) / "curve.parquet"),
                                  pd.read_parquet(Path(b_dir) / "curve.parquet"))
