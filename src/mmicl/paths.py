"""Every path of the workflow, in one place: rules, library and tests build no path strings."""

from __future__ import annotations

from pathlib import Path

RUN_FILES = (
    "model.pt", "snapshots.pt", "testsets.pt", "curve.parquet", "final.parquet", "attention.parquet", "config.json",
)


def world(results: str, seed: int | str, K, L, D) -> str:
    """Worlds depend only on (seed, K, L, D) and are shared by every tier and run."""
    return f"{results}/worlds/seed={seed}_K={K}_L={L}_D={D}.parquet"


def multimodal_world(results: str, seed, K1, L1, D1, K2, L2, D2) -> str:
    """M1 part identical to world(seed, K1, L1, D1) by construction (checked when training)."""
    return (f"{results}/worlds/multimodal/seed={seed}_K1={K1}_L1={L1}_D1={D1}"
            f"_K2={K2}_L2={L2}_D2={D2}.parquet")


def stage2_dir(results: str, tier: str, stage1_run: str, run: str, seed: int | str) -> str:
    """A Stage-2 run sits under the Stage-1 run it starts from (or whose architecture it uses)."""
    return f"{results}/{tier}/stage2/{stage1_run}/{run}/seed={seed}"


def stage2_file(results: str, tier: str, stage1_run: str, run: str, seed, name: str) -> str:
    return f"{stage2_dir(results, tier, stage1_run, run, seed)}/{name}"


ANALYSIS_FILES = ("interventions.parquet", "alignment.parquet")
INDICATORS_FILE = "indicators.parquet"


def stage1_dir(results: str, tier: str, run: str, seed: int | str) -> str:
    return f"{results}/{tier}/stage1/{run}/seed={seed}"


def stage1_file(results: str, tier: str, run: str, seed: int | str, name: str) -> str:
    return f"{stage1_dir(results, tier, run, seed)}/{name}"


def resume_checkpoint(run_dir: str | Path) -> Path:
    """Full training state for kill-and-resume; not a Snakemake output, so never deleted by it."""
    return Path(run_dir) / "resume.pt"


def cohort_checkpoint(results: str, tier: str, stage: str, name: str) -> str:
    """Resume state of a stacked (bmm/vmap) cohort job; sequential cohorts resume per member."""
    return f"{results}/{tier}/{stage}/cohorts/{name}.resume.pt"


def table(results: str, tier: str, name: str) -> str:
    return f"{results}/{tier}/tables/{name}.parquet"


def findings(results: str, ext: str = "parquet") -> str:
    """The findings check (one per results folder, like the figures; a tier column inside)."""
    return f"{results}/findings.{ext}"


def figure(results: str, name: str, ext: str = "pdf") -> str:
    """Figures (pdf, png) and tables (also csv, md) live together under results/figures/."""
    return f"{results}/figures/{name}.{ext}"


def log(results: str, tier: str, *parts: str) -> str:
    return f"{results}/{tier}/logs/" + "/".join(parts) + ".log"


def benchmark(results: str, tier: str, *parts: str) -> str:
    return f"{results}/{tier}/benchmarks/" + "/".join(parts) + ".tsv"
