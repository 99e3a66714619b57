"""Typed, torch-free specifications of runs: what to train, how, and from which world."""

from mmicl.specs.resolve import Resolved, content_dim, resolve, stage1_specs, stage2_specs
from mmicl.specs.run import RunSeeds, RunSpec, WorldKey, derive_seed
from mmicl.specs.train import EvalConfig, TrainConfig

__all__ = ["EvalConfig", "Resolved", "RunSeeds", "RunSpec", "TrainConfig", "WorldKey",
           "content_dim", "derive_seed", "resolve", "stage1_specs", "stage2_specs"]
