"""Every path of the workflow, in one place: rules, library and tests build no path strings."""

from __future__ import annotations

from pathlib import Path

RUN_FILES = ("model.pt", "snapshots.pt", "testsets.pt", "curve.parquet", "final.parquet",
             "attention.parquet", "config.json")
ANALYSIS_FILES = ("interventions.parquet", "alignment.parquet")
INDICATORS_FILE = "indicators.parquet"


def world(results: str, key) -> str:
    """A world (mmicl.specs.WorldKey), shared by every tier and run. The M1 half of a
    multimodal world is the unimodal world of the same seed and M1 shape (checked)."""
    if key.multimodal:
        return (f"{results}/worlds/multimodal/seed={key.seed}_K1={key.K1}_L1={key.L1}"
                f"_D1={key.D1}_K2={key.K2}_L2={key.L2}_D2={key.D2}.parquet")
    return f"{results}/worlds/seed={key.seed}_K={key.K1}_L={key.L1}_D={key.D1}.parquet"


def run_dir(results: str, spec) -> str:
    """A run's folder (mmicl.specs.RunSpec). A Stage-2 run sits under the Stage-1 run it
    starts from (or whose architecture it trains from scratch)."""
    if spec.stage == 1:
        return f"{results}/{spec.tier}/stage1/{spec.run}/seed={spec.seed}"
    return f"{results}/{spec.tier}/stage2/{spec.stage1_run}/{spec.run}/seed={spec.seed}"


def stage2_dir_pattern(results: str, tier: str) -> str:
    """A Stage-2 run folder with Snakemake wildcards {stage1_run}, {run} and {seed}."""
    return f"{results}/{tier}/stage2/{{stage1_run}}/{{run}}/seed={{seed}}"


def run_file(results: str, spec, name: str) -> str:
    return f"{run_dir(results, spec)}/{name}"


def resume_checkpoint(run_dir: str | Path) -> Path:
    """Full training state for kill-and-resume; not a Snakemake output, so never deleted by it."""
    return Path(run_dir) / "resume.pt"


def cohort_checkpoint(results: str, tier: str, stage: int, name: str) -> str:
    """Resume state of a stacked cohort job; sequential cohorts resume per member."""
    return f"{results}/{tier}/stage{stage}/cohorts/{name}.resume.pt"


def table(results: str, tier: str, name: str) -> str:
    return f"{results}/{tier}/tables/{name}.parquet"


def findings(results: str, tier: str, ext: str = "parquet") -> str:
    """The findings check of a tier."""
    return f"{results}/{tier}/findings.{ext}"


def figure(results: str, tier: str, name: str, ext: str = "pdf") -> str:
    """A tier's figures (pdf, png) and tables (also csv, md), under results/<tier>/figures/."""
    return f"{results}/{tier}/figures/{name}.{ext}"


def report(results: str, tier: str) -> str:
    """The HTML report of a tier (`snakemake --report <this path>`)."""
    return f"{results}/{tier}/report.html"


def log(results: str, tier: str, *parts: str) -> str:
    return f"{results}/{tier}/logs/" + "/".join(parts) + ".log"


def benchmark(results: str, tier: str, *parts: str) -> str:
    return f"{results}/{tier}/benchmarks/" + "/".join(parts) + ".tsv"
