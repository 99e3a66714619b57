# Configuration, validated before any job is scheduled, and the helpers every rule uses.
import json
import os
import shlex

from mmicl import config as mcfg
from mmicl import paths
from mmicl.figures import FIGURES, SOURCES

mcfg.validate_schema(config, workflow.source_path("../schemas/config.schema.yaml"))
TIER = mcfg.tier_config(config)
TIER_NAME = TIER["tier"]
RESULTS = TIER["results"]
DEFAULTS = TIER["stage1"]
DEVICE = TIER["device"]
THREADS = config.get("threads_per_run", 1)
SLURM = config.get("slurm", {})
GPUS = 1 if DEVICE.startswith("cuda") else 0
# Cluster placement is never hard-coded: config `slurm.partition` / `slurm.account`, else the
# environment variables MMICL_SLURM_PARTITION / MMICL_SLURM_ACCOUNT, else the cluster default.
SLURM_PLACEMENT = {
    key: value
    for key, value in {
        "slurm_partition": SLURM.get("partition") or os.environ.get("MMICL_SLURM_PARTITION"),
        "slurm_account": SLURM.get("account") or os.environ.get("MMICL_SLURM_ACCOUNT"),
    }.items()
    if value
}


wildcard_constraints:
    run=r"[^/]+",
    seed=r"\d+",
    figure="|".join(FIGURES),


def run_params(run):
    return mcfg.parse_run_id(run, DEFAULTS)


def stage1_spec(run, seed):
    """Everything a Stage-1 job needs, resolved from config (also written to its config.json)."""
    return {
        "tier": TIER_NAME,
        "run": run,
        "seed": int(seed),
        "params": run_params(run),
        "train": TIER["train"],
        "eval": TIER["eval"],
        "device": DEVICE,
    }


def quoted_json(obj):
    return shlex.quote(json.dumps(obj, sort_keys=True))


def world_of(run, seed):
    world, _, _ = mcfg.stage1_specs(run_params(run))
    return paths.world(RESULTS, seed, world["K"], world["L"], world["D"])


def stage1_outputs(figure):
    name = f"{SOURCES[figure]}.parquet"
    return [
        paths.stage1_file(RESULTS, TIER_NAME, run, seed, name)
        for run, seed in mcfg.figure_runs(TIER, figure)
    ]


def figure_targets():
    return [
        paths.figure(RESULTS, name, ext)
        for name in TIER["figures"]
        for ext in ("pdf", "png")
    ]
