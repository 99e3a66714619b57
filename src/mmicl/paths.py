"""Every path of the workflow, in one place: rules, library and tests build no path strings."""

from __future__ import annotations

from pathlib import Path

RUN_FILES = (
    "model.pt", "testsets.pt", "curve.parquet", "final.parquet", "attention.parquet", "config.json",
)


def world(results: str, seed: int | str, K, L, D) -> str:
    """Worlds depend only on (seed, K, L, D) and are shared by every tier and run."""
    return f"{results}/worlds/seed={seed}_K={K}_L={L}_D={D}.parquet"


def stage1_dir(results: str, tier: str, run: str, seed: int | str) -> str:
    return f"{results}/{tier}/stage1/{run}/seed={seed}"


def stage1_file(results: str, tier: str, run: str, seed: int | str, name: str) -> str:
    return f"{stage1_dir(results, tier, run, seed)}/{name}"


def resume_checkpoint(run_dir: str | Path) -> Path:
    """Full training state for kill-and-resume; not a Snakemake output, so never deleted by it."""
    return Path(run_dir) / "resume.pt"


def table(results: str, tier: str, name: str) -> str:
    return f"{results}/{tier}/tables/{name}.parquet"


def figure(results: str, name: str, ext: str = "pdf") -> str:
    return f"{results}/figures/{name}.{ext}"


def log(results: str, tier: str, *parts: str) -> str:
    return f"{results}/{tier}/logs/" + "/".join(parts) + ".log"


def benchmark(results: str, tier: str, *parts: str) -> str:
    return f"{results}/{tier}/benchmarks/" + "/".join(parts) + ".tsv"
