# Configuration, validated before any job is scheduled, the tier's plan, and the helpers every
# rule uses. Planning imports no torch (mmicl.plan / mmicl.specs), so a Slurm job's re-read of
# this Snakefile costs little.
import json
import os
import shlex
import sys

from snakemake.exceptions import WorkflowError

from mmicl import figures, paths, plan
from mmicl.plan.costs import summary as cost_summary
from mmicl.plan.costs import PREREQUISITE_PRIORITY, job_priority, tier_cost
from mmicl.monitor import stale_message, stale_runs
from mmicl.fingerprint import code_param, code_version
from mmicl.figures import CAPTIONS, FIGURES, FINDINGS_SOURCES, SOURCES, TABLES
from mmicl.specs import WorldKey, resolve
from mmicl.plan import images as plan_images
from mmicl.specs.images import image_keys

# Jobs run this checkout's library, installed or not (e.g. in a `--sdm conda` env, which holds
# the dependencies only): `python -m mmicl.cli` with src/ first on PYTHONPATH.
# MMICL_ON_CODE_CHANGE tells `mmicl train` the config's on_code_change (in the prefix, not in
# the commands, so choosing `keep` does not itself change the training jobs and rerun them).
shell.prefix(
    "set -euo pipefail; export PYTHONPATH="
    + shlex.quote(f"{workflow.basedir}/src")
    + "${{PYTHONPATH:+:$PYTHONPATH}} MMICL_ON_CODE_CHANGE="
    + shlex.quote(config.get("on_code_change", "stop"))
    + "; "
)

plan.validate_schema(config, workflow.source_path("../schemas/config.schema.yaml"))
TIER = plan.tier_config(config)
TIER_NAME = TIER["tier"]
RESULTS = TIER["results"]
DEVICE = TIER["device"]
THREADS = config.get("threads_per_run", 1)
SLURM = config.get("slurm", {})
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
GPU_KINDS = ("train",)  # job kinds that use `device` (the analyses run on the CPU)


def job_resources(kind, runs=1):
    """Slurm resources of a job kind (train, analysis, default): memory, wall time (train: per
    run, summed over a sequential cohort), a GPU for training on cuda, partition and account."""
    table = SLURM.get("resources", {})
    res = {**table.get("default", {}), **table.get(kind, {})}
    return {
        "mem_mb": res.get("mem_mb", 1000),
        "runtime": res.get("runtime_minutes", 30) * runs,
        **({"gpu": 1} if kind in GPU_KINDS and DEVICE.startswith("cuda") else {}),
        **SLURM_PLACEMENT,
    }


COHORTS = plan.plan_cohorts(TIER)
COST = tier_cost(TIER)
# Retraining is never silent: runs trained by other training code stop the workflow unless
# the user chooses (config on_code_change: retrain them, or keep their outputs as they are).
ON_CODE_CHANGE = config.get("on_code_change", "stop")
STALE = {spec.key: recorded for spec, recorded in stale_runs(TIER)}
if STALE and ON_CODE_CHANGE == "stop" and workflow.is_main_process and not workflow.remote_exec:
    raise WorkflowError(stale_message(TIER, STALE, COHORTS))
if workflow.is_main_process and not workflow.remote_exec:
    print(f"mmicl plan: {cost_summary(TIER)}", file=sys.stderr)


onstart:
    # Not on dry runs: a tier that would keep a CPU busy for days (the paper tier) starts only
    # when asked for explicitly.
    if (not DEVICE.startswith("cuda") and COST["cpu_hours"] > config.get("cpu_hours_limit", 24)
            and not config.get("allow_cpu_paper", False)):
        raise SystemExit(
            f"tier {TIER_NAME!r} on device {DEVICE!r} is estimated at {COST['cpu_hours']:,.0f} "
            f"CPU-hours (over cpu_hours_limit={config.get('cpu_hours_limit', 24)}): use a GPU "
            f"(--config device=cuda) or confirm with --config allow_cpu_paper=true"
        )

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
        inputs.update(image_inputs(spec))  # encoder and images (images.smk)
    return inputs


def cohort_entries(cohort):
    """The members of a `mmicl train` job."""
    check = {"min_stage1_ic": TIER["min_stage1_ic"]} if cohort.stage == 2 else {}
    return [{"spec": m.to_dict(), "out_dir": paths.run_dir(RESULTS, m),
             "inputs": {**{k: v for k, v in run_inputs(m).items() if k != "glyph_set"},
                        **image_root(m), **check}} for m in cohort.members]


def training_code(cohort):
    """The training-code fingerprint(s) a training job's params carry: the current code, or
    with on_code_change=keep the code that made each member already trained."""
    if ON_CODE_CHANGE != "keep":
        return code_param("training")
    versions = sorted({STALE.get(m.key, code_version("training")) for m in cohort.members})
    return " ".join(code_param("training", v) for v in versions)


def cohort_resources(cohort):
    """A training job: members one after the other add up their wall time."""
    return job_resources("train", len(cohort.members) if COHORT_BACKEND == "sequential" else 1)


def figure_inputs(figure):
    """The per-run tables a figure's table gathers."""
    return [run_file(spec, f"{SOURCES[figure]}.parquet") for spec in plan.figure_runs(TIER, figure)]


def figure_defaults(figure):
    return figures.figure_defaults(TIER, figure)


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
    tables.update(vlm_findings_tables())  # Section 5, when built (vlm_common.smk)
    return tables


def findings_context():
    return quoted_json(figures.findings_context(TIER))


def figure_outputs(name):
    exts = ("pdf", "png", "csv", "md") if name in TABLES else ("pdf", "png")
    return {ext: paths.figure(RESULTS, TIER_NAME, name, ext) for ext in exts}


def figure_targets():
    targets = [paths.findings(RESULTS, TIER_NAME, "parquet"), paths.findings(RESULTS, TIER_NAME, "md")]
    for name in TIER["figures"]:
        targets += list(figure_outputs(name).values())
    return targets


def unknown_figure(name):
    raise WorkflowError(f"no figure {name!r} in tier {TIER_NAME!r}; its figures are: "
                        f"{', '.join(TIER['figures'])} (each at {paths.figure(RESULTS, TIER_NAME, '<figure>', 'pdf')}, "
                        f"or as a target: snakemake <figure>)")


def moved_figure(name, ext):
    raise WorkflowError(f"figures live under their tier now: "
                        f"{paths.figure(RESULTS, TIER_NAME, name, ext)} (or: snakemake {name})")


# M2 encoders and images (images.smk, docs/images.md)


def encoder_file(run, name="encoder.pt"):
    return f"{plan_images.encoder_dir(RESULTS, run)}/{name}"


def image_inputs(spec):
    """Files a Stage-2 run with an encoder or images reads besides its world: the pretrained
    encoder, and the rendered glyph set (its manifest)."""
    if spec.stage != 2:
        return {}
    out = {}
    run = plan_images.encoder_run(TIER, spec)
    if run is not None:
        out["encoder_model"] = encoder_file(run)
    if image_keys(spec.params2)["m2_data"] == "glyphs":
        out["glyph_set"] = plan_images.glyph_manifest(TIER)
    return out


def image_root(spec):
    """The image root a Stage-2 run reads (RunInputs.images), if any."""
    if spec.stage != 2:
        return {}
    root = plan_images.data_root(TIER, image_keys(spec.params2)["m2_data"])
    return {} if root is None else {"images": root}
