"""Planning a tier, torch-free (the Snakefile imports it on every start, Slurm jobs included):
the configuration and its checks (`config`), the runs and the runs each figure needs (`runs`),
and the training jobs (`cohorts`)."""

from mmicl.plan.cohorts import CohortPlan, plan_cohorts, resolve_backend
from mmicl.plan.config import (
    ConfigError, deep_merge, read_config_file, tier_config, validate_schema,
)
from mmicl.plan.runs import (
    all_runs, default_runs, figure_runs, grids_of, needed_runs, parent, run_id, stage1_spec,
    stage2_spec,
)

__all__ = ["CohortPlan", "ConfigError", "all_runs", "deep_merge", "default_runs", "figure_runs",
           "grids_of", "needed_runs", "parent", "plan_cohorts", "read_config_file", "resolve_backend", "run_id",
           "stage1_spec", "stage2_spec", "tier_config", "validate_schema"]
