# Configuration, validated before any job is scheduled, and the helpers every rule uses.
import json
import os
import shlex
from functools import partial

from mmicl import config as mcfg
from mmicl import paths
from mmicl.figures import (
    CAPTIONS,
    FIGURE_STAGE,
    FIGURES,
    FINDINGS_SOURCES,
    REGRESSION_FIGURES,
    SOURCES,
    TABLES,
)

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
    stage1_run=r"[^/]+",
    seed=r"\d+",
    figure="|".join(FIGURES),
    table="|".join(TABLES),


COHORTS = TIER["cohorts"]
COHORT_BACKEND = mcfg.resolve_backend(COHORTS["backend"], DEVICE)


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


def quoted_json(obj, sort_keys=True):
    """Shell-quoted JSON. Run specs are sorted (a stable text, so Snakemake's params trigger
    only fires on real changes); figure contexts keep their order (hue key before x key)."""
    return shlex.quote(json.dumps(obj, sort_keys=sort_keys))


def world_of(run, seed):
    world, _, _ = mcfg.stage1_specs(run_params(run))
    return paths.world(RESULTS, seed, world["K"], world["L"], world["D"])


def stage2_params(stage1_run, run):
    return mcfg.parse_run_id(stage1_run, DEFAULTS), mcfg.parse_run_id(run, TIER["stage2"])


def stage2_spec(stage1_run, run, seed):
    p1, p2 = stage2_params(stage1_run, run)
    return {
        "tier": TIER_NAME,
        "run": run,
        "stage1_run": stage1_run,
        "seed": int(seed),
        "params1": p1,
        "params2": p2,
        "train": mcfg.stage2_train(TIER, p2),
        "eval": TIER["eval"],
        "device": DEVICE,
    }


def stage2_inputs(stage1_run, run, seed):
    """The multimodal world, the Stage-1 world it must extend, and (two-stage runs) the
    Stage-1 checkpoint of the same seed: a dependency, never a typed path."""
    p1, p2 = stage2_params(stage1_run, run)
    world, _, _ = mcfg.stage2_specs(p1, p2)
    inputs = {
        "world": paths.multimodal_world(RESULTS, seed, *world.values()),
        "stage1_world": world_of(stage1_run, seed),
    }
    if not p2["early_fusion"]:
        inputs["stage1_model"] = paths.stage1_file(RESULTS, TIER_NAME, stage1_run, seed, "model.pt")
    return inputs


# --- cohorts: the training jobs (mmicl.config.stage1_cohorts / stage2_cohorts); one rule per
# cohort, since a rule's outputs are every member's run files


def stage1_entry(run, seed):
    """One member of a `mmicl train-cohort` job."""
    return {
        "spec": stage1_spec(run, seed),
        "world": world_of(run, seed),
        "out_dir": paths.stage1_dir(RESULTS, TIER_NAME, run, seed),
    }


def stage2_entry(stage1_run, run, seed):
    inputs = stage2_inputs(stage1_run, run, seed)
    return {
        "spec": stage2_spec(stage1_run, run, seed),
        "world": inputs["world"],
        "stage1_world": inputs["stage1_world"],
        "stage1_model": inputs.get("stage1_model", ""),
        "out_dir": paths.stage2_dir(RESULTS, TIER_NAME, stage1_run, run, seed),
    }


def cohort_resources(cohort):
    """Slurm: `runtime_minutes` is per run; members one after the other add up."""
    per_run = SLURM.get("runtime_minutes", 120)
    return {
        "mem_mb": SLURM.get("mem_mb", 2000),
        "runtime": per_run * (len(cohort.members) if COHORT_BACKEND == "sequential" else 1),
        "gpu": GPUS,
        **SLURM_PLACEMENT,
    }


def cohort_command(members, checkpoint):
    return (
        f"mmicl train-cohort --members {quoted_json(members)} --backend {COHORT_BACKEND} "
        f"--checkpoint {shlex.quote(checkpoint)}" + ("" if COHORTS["reuse"] else " --no-reuse")
    )


def figure_inputs(figure):
    """The per-run tables `collect` concatenates for a figure."""
    name = f"{SOURCES[figure]}.parquet"
    if FIGURE_STAGE[figure] == 0:  # fig6: the default runs of both stages
        runs1, runs2 = mcfg.dynamics_runs(TIER)
        return [paths.stage1_file(RESULTS, TIER_NAME, run, seed, name) for run, seed in runs1] + [
            paths.stage2_file(RESULTS, TIER_NAME, s1, s2, seed, name) for s1, s2, seed in runs2
        ]
    if FIGURE_STAGE[figure] == 1:
        return [
            paths.stage1_file(RESULTS, TIER_NAME, run, seed, name)
            for run, seed in mcfg.figure_runs(TIER, figure)
        ]
    return [
        paths.stage2_file(RESULTS, TIER_NAME, s1, s2, seed, name)
        for s1, s2, seed in mcfg.stage2_figure_runs(TIER, figure)
    ]


def figure_table(figure):
    """The table a figure is drawn from: its collected table, or the regression table."""
    name = "regression" if figure in REGRESSION_FIGURES else figure
    return paths.table(RESULTS, TIER_NAME, name)


def family_indicator_inputs(family):
    """Indicator tables of every run of a family (every run the tier trains)."""
    if family == "unimodal":
        return [
            paths.stage1_file(RESULTS, TIER_NAME, run, seed, paths.INDICATORS_FILE)
            for run, seed in mcfg.all_runs(TIER)
        ]
    return [
        paths.stage2_file(RESULTS, TIER_NAME, s1, s2, seed, paths.INDICATORS_FILE)
        for s1, s2, seed in mcfg.all_stage2_runs(TIER)
    ]


def figure_defaults(figure):
    """The defaults a figure's rows are selected against (Stage-2 figures see Stage-1
    defaults as stage1.<key>)."""
    if FIGURE_STAGE[figure] == 2:
        return {**TIER["stage2"], **{f"stage1.{k}": v for k, v in DEFAULTS.items()}}
    return dict(DEFAULTS)


def figure_context(figure):
    """What a figure module needs besides its table: its sweep and the defaults."""
    return quoted_json(
        {"sweep": TIER["figures"][figure], "defaults": figure_defaults(figure)}, sort_keys=False
    )


def findings_tables(wildcards=None):
    """name -> collected table of every source the findings read that this tier builds."""
    tables = {name: paths.table(RESULTS, TIER_NAME, name) for name in FINDINGS_SOURCES
              if name in TIER["figures"] and name not in REGRESSION_FIGURES}
    if any(name in TIER["figures"] for name in REGRESSION_FIGURES):
        tables["regression"] = paths.table(RESULTS, TIER_NAME, "regression")
    return tables


def findings_context():
    figures = TIER["figures"]
    return quoted_json({"figures": figures,
                        "defaults": {name: figure_defaults(name) for name in figures}})


def figure_targets():
    targets = [paths.findings(RESULTS, "parquet"), paths.findings(RESULTS, "md")]
    for name in TIER["figures"]:
        exts = ("pdf", "png", "csv", "md") if name in TABLES else ("pdf", "png")
        targets += [paths.figure(RESULTS, name, ext) for ext in exts]
    return targets
