"""What a tier costs before it runs: runs, steps, jobs, and CPU-/GPU-hours (torch-free).

The CPU model is calibrated on this project's benchmarks (benchmarks/README.md: one thread of a
2-core AMD EPYC; RoPE-D64 ~60 and APE-D63 ~27 Stage-1 steps/s, frozen Stage 2 ~21 steps/s): a
training step costs `STEP_OVERHEAD_S` plus `SECONDS_PER_GFLOP` per GFLOP of its matrix products,
estimated as 2 x params x tokens forward plus as much again for the activation gradients plus
2 x trainable params x tokens for the weight gradients. It reproduces the benchmark shapes to
~25%; other machines differ (state the host when quoting). The GPU model is NOT measured here
(no GPU on the development machines): a step of a small model is bound by kernel launches, so
it is taken as `GPU_STEP_S` per step whatever the size, and a stacked cohort of M runs as one
step of M times the work at `GPU_TFLOPS` (see benchmarks/README.md, "GPU plan").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mmicl.specs import RunSpec, resolve

STEP_OVERHEAD_S = 0.0096  # per training step, 1 CPU thread (fit of the two Stage-1 shapes)
SECONDS_PER_GFLOP = 0.0104  # per GFLOP of matrix products, 1 CPU thread
PROCESS_START_S = 4.0  # python + torch import and Snakemake job overhead, per job
GPU_STEP_S = 0.003  # [assumption] a launch-bound step of one small model on a GPU
GPU_TFLOPS = 20.0  # [assumption] effective fp32 throughput of a stacked cohort on a GPU
EVAL_SETS = 4
PREREQUISITE_PRIORITY = 1_000_000  # Snakemake priority of the jobs other jobs wait for


def decoder_params(model) -> int:
    """Parameters of a DecoderConfig (the formula of models/decoder.py, torch-free)."""
    d = model.dim
    attention = 3 * d * d + (d * d if model.n_heads > 1 else 0)
    mlp = 3 * (d * d + d)
    norms = 2 * d if model.rms_norm else 0
    final = (d if model.rms_norm else 0) + model.n_labels * d
    return model.n_layers * (attention + mlp + norms) + final


def run_params(spec: RunSpec) -> tuple[int, int, int]:
    """(parameters, trainable parameters, tokens per sequence) of a run."""
    model = resolve(spec).model
    if spec.stage == 1:
        n = decoder_params(model)
        return n, n, 2 * spec.params1["N"] + 1
    dec = decoder_params(model.decoder)
    D1 = model.decoder.content_dim
    projector = model.m2_dim * D1 + D1 * D1 * (1 if model.projector == "small" else 2)
    p2 = spec.params2
    frozen = 0
    if not p2["early_fusion"] and p2["freeze_decoder"]:
        head = model.decoder.n_labels * model.decoder.dim + model.decoder.dim
        frozen = dec - (0 if p2["freeze_head"] else head)
    return dec + projector, dec + projector - frozen, 3 * p2["N"] + 2


@dataclass(frozen=True)
class RunCost:
    steps: int
    cpu_s: float  # one thread, training + evaluation + indicators
    gpu_s: float  # [assumption] alone on a GPU


def run_cost(spec: RunSpec) -> RunCost:
    params, trainable, T = run_params(spec)
    tr = spec.train
    tokens = tr.batch_size * T
    gflop_step = (4 * params + 2 * trainable) * tokens / 1e9
    train_s = tr.iterations * (STEP_OVERHEAD_S + SECONDS_PER_GFLOP * gflop_step)
    test_tokens = EVAL_SETS * spec.eval.test_set_size * T
    evals = len(tr.test_iterations())
    eval_s = evals * SECONDS_PER_GFLOP * 2 * params * test_tokens / 1e9
    snapshots = len(tr.snapshot_iterations())
    indicators_s = snapshots * SECONDS_PER_GFLOP * 2 * params * spec.eval.test_set_size * T / 1e9
    gpu_s = tr.iterations * GPU_STEP_S + evals * EVAL_SETS * GPU_STEP_S
    return RunCost(tr.iterations, train_s + eval_s + indicators_s, gpu_s)


def job_priority(runs, prerequisite: bool = False) -> int:
    """Snakemake priority of a training job: first the jobs others wait for (Stage-1 parents,
    encoder pretraining), then the longest first by estimated CPU seconds, so that the end of
    a tier is short jobs on every core rather than one long job on one (the laptop tier ended
    with a 5-minute cohort alone when every job had the same priority)."""
    return (PREREQUISITE_PRIORITY if prerequisite else 0) + round(
        sum(run_cost(spec).cpu_s for spec in runs))


def tier_cost(tier: Mapping) -> dict:
    """Runs, steps, jobs and CPU-/GPU-hours of a tier (training, evaluation, indicators and
    the per-job process starts; tables and figures are seconds each)."""
    from mmicl.plan.cohorts import plan_cohorts
    from mmicl.plan.runs import all_runs

    runs = all_runs(tier)
    cohorts = plan_cohorts(tier)
    costs = [run_cost(s) for s in runs]
    stage2 = sum(s.stage == 2 for s in runs)
    worlds = len({resolve(s).world for s in runs} | {resolve(s).world.m1 for s in runs})
    figures = len(tier.get("figures", {}))
    jobs = len(cohorts) + stage2 + worlds + figures + len(tier.get("figures", {})) + 4
    cpu_s = sum(c.cpu_s for c in costs) + jobs * PROCESS_START_S
    size = tier["cohorts"]["size"]
    gpu_s = sum(c.gpu_s for c in costs) / max(1, min(size, 16)) * 2  # stacked, 2x for the work
    return {"tier": tier["tier"], "runs": len(runs), "stage1_runs": len(runs) - stage2,
            "stage2_runs": stage2, "steps": sum(c.steps for c in costs), "jobs": jobs,
            "training_jobs": len(cohorts), "cpu_hours": cpu_s / 3600, "gpu_hours": gpu_s / 3600}


def device_note(device: str, cores: int | None = None) -> str:
    if device.startswith("cuda"):
        return ("device cuda: each training job asks for one GPU and stacks its cohort under "
                "vmap; GPU-hours are an assumption (no GPU measured here)")
    if device == "auto":
        return "device auto: cuda where the job finds one, else the CPU (1 thread per job)"
    text = f"device {device}: every job runs on the CPU with threads_per_run threads"
    if cores:
        text += f"; with --cores {cores} about {cores} jobs at once"
    return text


def summary(tier: Mapping, cores: int | None = None) -> str:
    """One line: what the tier trains and what it costs."""
    c = tier_cost(tier)
    wall = f" (~{c['cpu_hours'] / cores:.1f} h on {cores} cores)" if cores else ""
    return (f"tier {c['tier']}: {c['runs']} runs ({c['stage1_runs']} Stage 1, "
            f"{c['stage2_runs']} Stage 2), {c['steps']:,} training steps, {c['jobs']} jobs; "
            f"~{c['cpu_hours']:.1f} CPU-hours{wall}, or ~{c['gpu_hours']:.1f} GPU-hours "
            f"[assumed GPU speed]; {device_note(tier['device'], cores)}")


def table(tiers, cores: int | None = None) -> str:
    """`mmicl plan`: one row per tier."""
    head = ("tier", "runs (S1/S2)", "steps", "jobs (training)", "CPU-hours",
            f"wall on {cores} cores" if cores else "", "GPU-hours*")
    rows = [head]
    for tier in tiers:
        c = tier_cost(tier)
        rows.append((c["tier"], f"{c['runs']} ({c['stage1_runs']}/{c['stage2_runs']})",
                     f"{c['steps']:,}", f"{c['jobs']} ({c['training_jobs']})",
                     f"{c['cpu_hours']:.1f}", f"{c['cpu_hours'] / cores:.1f} h" if cores else "",
                     f"{c['gpu_hours']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
    devices = sorted({t["device"] for t in tiers})
    lines += [device_note(d, cores) for d in devices]
    lines.append("CPU model: this project's benchmarks on one thread of a 2-core EPYC (+-25%); "
                 "* GPU-hours assume a launch-bound 3 ms step, not measured here")
    return "\n".join(lines)
