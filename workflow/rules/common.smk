# Configuration, validated before any job is scheduled, the tier's plan, and the helpers every
# rule uses. Planning imports no torch (mmicl.plan / mmicl.specs), so a Slurm job's re-read of
# this Snakefile costs little.
import json
import os
import shlex

from mmicl import paths, plan
from mmicl.fingerprint import code_version, figure_code
from mmicl.figures import CAPTIONS, FIGURE_STAGE, FIGURES, FINDINGS_SOURCES, SOURCES, TABLES
from mmicl.specs import WorldKey, resolve

plan.validate_schema(config, workflow.source_path("../schemas/config.schema.yaml"))
TIER = plan.tier_config(config)
TIER_NAME = TIER["tier"]
RESULTS = TIER["results"]
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
COHORTS = plan.plan_cohorts(TIER)
COHORT_BACKEND = plan.resolve_backend(TIER["cohorts"]["backend"], DEVICE)


wildcard_constraints:
    run=r"[^/]+",
    stage1_run=r"[^/]+",
    seed=r"\d+",


def quoted_json(obj, sort_keys=True):
    """Shell-quoted JSON. Specs are sorted (a stable text, so Snakemake's params trigger fires
    only on real changes); figure contexts keep their order (hue key before x key)."""
    return shlex.quote(json.dumps(obj, sort_keys=sort_keys))


def run_file(spec, name):
    return paths.run_file(RESULTS, spec, name)


def run_inputs(spec):
    """The files a run reads: its world; for Stage 2 the Stage-1 world its M1 half must equal
    and, for a two-stage run, the Stage-1 checkpoint of the same seed (a dependency, never a
    typed path)."""
    key = resolve(spec).world
    inputs = {"world": paths.world(RESULTS, key)}
    if spec.stage == 2:
        inputs["stage1_world"] = paths.world(RESULTS, key.m1)
        parent = plan.parent(TIER, spec)
        if parent is not None:
            inputs["stage1_model"] = run_file(parent, "model.pt")
    return inputs


def cohort_entries(cohort):
    """The members of a `mmicl train` job."""
    return [{"spec": m.to_dict(), "out_dir": paths.run_dir(RESULTS, m), "inputs": run_inputs(m)}
            for m in cohort.members]


def cohort_resources(cohort):
    """Slurm: `runtime_minutes` is per run; members one after the other add up."""
    per_run = SLURM.get("runtime_minutes", 120)
    return {
        "mem_mb": SLURM.get("mem_mb", 2000),
        "runtime": per_run * (len(cohort.members) if COHORT_BACKEND == "sequential" else 1),
        "gpu": GPUS,
        **SLURM_PLACEMENT,
    }


def figure_inputs(figure):
    """The per-run tables a figure's table gathers."""
    return [run_file(spec, f"{SOURCES[figure]}.parquet") for spec in plan.figure_runs(TIER, figure)]


def figure_defaults(figure):
    """The defaults a figure's rows are selected against (Stage-2 figures see Stage-1
    defaults as stage1.<key>)."""
    if FIGURE_STAGE[figure] == 2:
        return {**TIER["stage2"], **{f"stage1.{k}": v for k, v in TIER["stage1"].items()}}
    return dict(TIER["stage1"])


def figure_context(figure):
    """What a figure module needs besides its table: its sweep and the defaults."""
    return quoted_json(
        {"sweep": TIER["figures"][figure], "defaults": figure_defaults(figure)}, sort_keys=False
    )


def figure_table(figure):
    """The table a figure is drawn from: its collected table, or the regression table."""
    return paths.table(RESULTS, TIER_NAME, "regression" if SOURCES[figure] == "regression"
                       else figure)


def findings_tables(wildcards=None):
    """name -> collected table of every source the findings read that this tier builds."""
    tables = {name: paths.table(RESULTS, TIER_NAME, name) for name in FINDINGS_SOURCES
              if name in TIER["figures"] and SOURCES[name] != "regression"}
    if any(SOURCES[name] == "regression" for name in TIER["figures"]):
        tables["regression"] = paths.table(RESULTS, TIER_NAME, "regression")
    return tables


def findings_context():
    figures = TIER["figures"]
    return quoted_json({"figures": figures,
                        "defaults": {name: figure_defaults(name) for name in figures}})


def figure_outputs(name):
    exts = ("pdf", "png", "csv", "md") if name in TABLES else ("pdf", "png")
    return {ext: paths.figure(RESULTS, name, ext) for ext in exts}


def figure_targets():
    targets = [paths.findings(RESULTS, "parquet"), paths.findings(RESULTS, "md")]
    for name in TIER["figures"]:
        targets += list(figure_outputs(name).values())
    return targets
