"""Throughput benchmarks of the training / data / indicator hot paths, written as one JSON file.

    python -m benchmarks --out benchmarks/results/<name>.json          # full: a few minutes
    python -m benchmarks --quick --out benchmarks/results/<name>.json  # under a minute

Every number is the median over `repeats` timed repetitions after `warmup` untimed ones. The JSON
holds the commit, torch version, thread count and host (CPU model, cores, load average before and
after: another job on the machine slows every number) so files compare across commits.

Shapes are the workflow defaults: Stage 1 RoPE D=64 and APE D=63 (L=32, N=8, K=8192, batch 128,
2 layers, 1 head, Adam); Stage 2 K1=8192 (APE D1=63), K2=256, D2=64, frozen decoder, small
projector. FLOPs per training step are accounted as 6 x parameters x tokens (tokens = batch x
sequence length), the usual estimate; it over-counts this decoder, whose last layer computes the
last position only, and a frozen decoder (no weight gradients), so "fraction of peak" is an upper
bound. The peak is measured here, with big fp32 matmuls.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from mmicl.analysis.evaluate import evaluate, forward
from mmicl.analysis.indicators import (
    copy_from_context_rate, head_scores, indicators_loop, model_indicators,
)
from mmicl.analysis.ours import DecoderAdapter
from mmicl.data.multimodal import MultimodalSpec, generate_multimodal, make_multimodal_test_sets
from mmicl.data.sequences import SequenceSpec, generate_sequences, make_test_sets
from mmicl.data.worlds import make_multimodal_world, make_world
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.models.multimodal import MultimodalConfig, MultimodalDecoder
from mmicl.specs import TrainConfig
from mmicl.train.loop import Solo, make_optimizer
from mmicl.train.loop import train_step as loop_step
from mmicl.train.members import init_model
from mmicl.train.stacking import Stack

REPO = Path(__file__).resolve().parent.parent
STAGE1_SHAPES = {"rope_D64": ("rope", 64), "ape_D63": ("ape", 63)}
K, L, N, BATCH = 8192, 32, 8, 128
K2, L2, D2 = 256, 32, 64
CADENCE = 100  # evaluation + indicators every 100 steps (the authors' cadence)


# --------------------------------------------------------------------------------------------
# timing


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1, inner: int = 1) -> float:
    """Median seconds per call of fn over `repeats` timings of `inner` calls each."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - started) / inner)
    return statistics.median(times)


class threads:
    """Context manager: torch intra-op threads set to n, restored afterwards."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.before)


# --------------------------------------------------------------------------------------------
# host and build info


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def host_info() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# --------------------------------------------------------------------------------------------
# (5) machine peak


def matmul_peak(n: int, repeats: int) -> float:
    """GFLOP/s of an (n x n) @ (n x n) fp32 matmul at the current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    seconds = median_time(lambda: torch.mm(a, b, out=out), repeats, warmup=2)
    return 2 * n**3 / seconds / 1e9


# --------------------------------------------------------------------------------------------
# models and data


def stage1_setup(pe: str, D: int, seed: int = 0):
    world = make_world(seed, K, L, D)
    seq = SequenceSpec(N=N)
    cfg = DecoderConfig(content_dim=D, n_labels=L, pe=pe)
    return world, seq, cfg


def stage2_setup(seed: int = 0):
    """The default Stage-2 model: the authors' RoPE decoder (D = 64), frozen, and a projector."""
    world = make_multimodal_world(seed, K, L, 64, K2, L2, D2)
    spec = MultimodalSpec(N=N)
    cfg = MultimodalConfig(decoder=DecoderConfig(content_dim=64, n_labels=L, pe="rope"),
                           m2_dim=D2, projector="small")
    return world, spec, cfg


def train_step(model, sample) -> Callable[[], float]:
    """The training loop's own step (mmicl.train.loop.train_step: forward, cross-entropy,
    zero_grad, backward, Adam) after drawing the batch, as a callable that runs one step and
    returns the seconds spent generating its data."""
    engine = Solo(model)
    optimizer = make_optimizer(engine.trainable(), TrainConfig(optimizer="adam"))
    gen = torch.Generator().manual_seed(0)

    def step() -> float:
        t0 = time.perf_counter()
        batch = sample(gen)
        data_s = time.perf_counter() - t0
        loop_step(engine, optimizer, [batch])
        return data_s

    return step


def train_loop_timing(model, sample, steps: int, repeats: int, warmup_steps: int) -> dict:
    """`train_step` timed end to end over `steps` steps per repeat; the data share is timed
    inside the loop."""
    step = train_step(model, sample)
    for _ in range(warmup_steps):
        step()
    totals, data = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        data_s = sum(step() for _ in range(steps))
        totals.append((time.perf_counter() - started) / steps)
        data.append(data_s / steps)
    step_s, data_s = statistics.median(totals), statistics.median(data)
    return {"step_ms": step_s * 1e3, "steps_per_s": 1 / step_s, "data_ms": data_s * 1e3,
            "data_share": data_s / step_s}


def flop_per_step(n_params: int, seq_len: int, batch: int = BATCH) -> float:
    return 6.0 * n_params * batch * seq_len


def counted_flop_per_step(model, batch) -> float:
    """The matmul FLOPs one training step really performs (forward + backward of the loss, as
    torch.utils.flop_counter counts mm/bmm/addmm/attention), unlike the 6 x params x tokens
    estimate: it sees that the last layer computes one query and that a frozen decoder has no
    weight gradients. Divided by the matmul peak it is a ceiling on steps/s: a step cannot
    finish faster than its matrix products at peak speed, whatever the elementwise kernels cost."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(forward(model, batch), batch.targets).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _flop_block(flop_6pt: float, flop_counted: float, steps_per_s: float, peak: float) -> dict:
    return {"flop_per_step": flop_6pt, "gflops": flop_6pt * steps_per_s / 1e9,
            "fraction_of_peak_1thread": flop_6pt * steps_per_s / 1e9 / peak,
            "counted_flop_per_step": flop_counted,
            "counted_gflops": flop_counted * steps_per_s / 1e9,
            "counted_fraction_of_peak_1thread": flop_counted * steps_per_s / 1e9 / peak,
            "matmul_ceiling_steps_per_s": peak * 1e9 / flop_counted}


# --------------------------------------------------------------------------------------------
# the suite


def bench_stage1(cfg: dict, peak1: float) -> dict:
    out = {}
    for name, (pe, D) in STAGE1_SHAPES.items():
        world, seq, mcfg = stage1_setup(pe, D)
        model = init_model(lambda mcfg=mcfg: Decoder(mcfg), 0, "cpu")
        res = train_loop_timing(model, lambda g: generate_sequences(world, seq, BATCH, g),
                                cfg["steps"], cfg["repeats"], cfg["warmup_steps"])
        n_params = sum(p.numel() for p in model.parameters())
        counted = counted_flop_per_step(model, generate_sequences(world, seq, BATCH,
                                                                  torch.Generator().manual_seed(1)))
        out[name] = {"pe": pe, "D": D, "params": n_params, "tokens_per_step": BATCH * (2 * N + 1),
                     **res, **_flop_block(flop_per_step(n_params, 2 * N + 1), counted,
                                          res["steps_per_s"], peak1)}
    return out


def bench_data(cfg: dict) -> dict:
    world, seq, _ = stage1_setup("rope", 64)
    gen = torch.Generator().manual_seed(0)
    uni = median_time(lambda: generate_sequences(world, seq, BATCH, gen), cfg["repeats"],
                      warmup=2, inner=cfg["data_inner"])
    mworld, mspec, _ = stage2_setup()
    multi = median_time(lambda: generate_multimodal(mworld, mspec, BATCH, gen), cfg["repeats"],
                        warmup=2, inner=cfg["data_inner"])
    return {
        "batch": BATCH,
        "unimodal": {"ms_per_batch": uni * 1e3, "sequences_per_s": BATCH / uni,
                     "K": K, "D": 64},
        "multimodal": {"ms_per_batch": multi * 1e3, "sequences_per_s": BATCH / multi,
                       "K1": K, "K2": K2, "D1": 63, "D2": D2},
    }


def _loop_indicators(model, batch, kind):
    """The authors' approach: one forward with attention maps, then the per-sequence loop."""
    with torch.no_grad():
        logits, attn = forward(model, batch, return_attn=True)
    scores = indicators_loop(attn, batch.seq_labels, kind)
    return scores, copy_from_context_rate(logits, batch.seq_labels)


def bench_indicators(cfg: dict) -> dict:
    out = {}
    world, seq, mcfg = stage1_setup("ape", 63)
    model = init_model(lambda: Decoder(mcfg), 0, "cpu").eval()
    ic1 = make_test_sets(world, seq, cfg["set_size"], 1)["IC"]
    mworld, mspec, mmcfg = stage2_setup()
    mmodel = init_model(lambda: MultimodalDecoder(mmcfg), 0, "cpu").eval()
    ic2 = make_multimodal_test_sets(mworld, mspec, cfg["set_size"], 1)["IC"]
    cases = {"stage1_ape_D63": (model, ic1, "unimodal"), "stage2": (mmodel, ic2, "multimodal")}
    for name, (m, batch, kind) in cases.items():
        adapter = DecoderAdapter(m)
        vec = median_time(lambda a=adapter, b=batch: model_indicators(a, b),
                          cfg["repeats"], warmup=1)
        loop = median_time(lambda m=m, b=batch, k=kind: _loop_indicators(m, b, k),
                           cfg["loop_repeats"], warmup=0)
        (s_vec, c_vec), (s_loop, c_loop) = (model_indicators(adapter, batch),
                                            _loop_indicators(m, batch, kind))
        diff = max((s_vec[k] - s_loop[k]).abs().max().item() for k in s_vec)
        # the scores alone, from the same attention maps (no forward pass)
        with torch.no_grad():
            _, attn = forward(m, batch, return_attn=True)
        positions = adapter.positions(batch)
        scores_vec = median_time(lambda a=attn, b=batch, p=positions: head_scores(a, b.seq_labels, p),
                                 cfg["repeats"], warmup=1)
        scores_loop = median_time(
            lambda a=attn, b=batch, k=kind: indicators_loop(a, b.seq_labels, k),
            cfg["loop_repeats"], warmup=0)
        out[name] = {"sequences": cfg["set_size"], "vectorised_ms": vec * 1e3,
                     "loop_ms": loop * 1e3, "speedup": loop / vec,
                     "scores_vectorised_ms": scores_vec * 1e3, "scores_loop_ms": scores_loop * 1e3,
                     "max_abs_diff": diff, "cla_equal": c_vec == c_loop}
    return out


def bench_stage2(cfg: dict, peak1: float, indicators: dict) -> dict:
    world, spec, mcfg = stage2_setup()
    model = init_model(lambda: MultimodalDecoder(mcfg), 0, "cpu")
    model.freeze_decoder()
    res = train_loop_timing(model, lambda g: generate_multimodal(world, spec, BATCH, g),
                            cfg["steps"], cfg["repeats"], cfg["warmup_steps"])
    size = cfg["set_size"]
    test_sets = make_multimodal_test_sets(world, spec, size, 1)
    eval_s = median_time(lambda: evaluate(model, test_sets, L2), cfg["repeats"], warmup=1)
    ind_s = indicators["stage2"]["vectorised_ms"] / 1e3  # on the same-size IC set
    loop_s = indicators["stage2"]["loop_ms"] / 1e3
    step_s = res["step_ms"] / 1e3
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    counted = counted_flop_per_step(model, generate_multimodal(world, spec, BATCH,
                                                               torch.Generator().manual_seed(1)))
    cadence = CADENCE / (CADENCE * step_s + eval_s + ind_s)
    return {
        "params": n_params, "trainable_params": trainable,
        "tokens_per_step": BATCH * (3 * N + 2), **res,
        **_flop_block(flop_per_step(n_params, 3 * N + 2), counted, res["steps_per_s"], peak1),
        "eval_ms": eval_s * 1e3, "eval_sets": 4, "eval_sequences_per_set": size,
        "indicators_ms": ind_s * 1e3, "indicators_loop_ms": loop_s * 1e3,
        "cadence_steps": CADENCE,
        "steps_per_s_with_eval_and_indicators": cadence,
        "steps_per_s_with_eval_and_loop_indicators":
            CADENCE / (CADENCE * step_s + eval_s + loop_s),
    }


def cohort_step_time(pe: str, D: int, size: int, steps: int, repeats: int) -> dict:
    """One step of a stacked cohort in the training loop (every member's data, the vmap
    forward, backward, Adam): mmicl.train.loop.train_step over a Stack."""
    world, seq, mcfg = stage1_setup(pe, D)
    models = [init_model(lambda: Decoder(mcfg), i, "cpu") for i in range(size)]
    stack = Stack(models)
    optimizer = make_optimizer(stack.trainable(), TrainConfig(optimizer="adam"))
    gens = [torch.Generator().manual_seed(i) for i in range(size)]

    def step():
        loop_step(stack, optimizer, [generate_sequences(world, seq, BATCH, g) for g in gens])

    seconds = median_time(step, repeats, warmup=2, inner=steps)
    return {"step_ms": seconds * 1e3, "run_steps_per_s": size / seconds}


def bench_cohorts(cfg: dict, peaks: dict, stage1: dict) -> dict:
    out = {"backend": "vmap", "sizes": cfg["cohort_sizes"], "thread_counts": {}}
    for label, n_threads in cfg["cohort_threads"].items():
        rows = {}
        with threads(n_threads):
            for name, (pe, D) in STAGE1_SHAPES.items():
                flop = stage1[name]["flop_per_step"]
                counted = stage1[name]["counted_flop_per_step"]
                rows[name] = {}
                for size in cfg["cohort_sizes"]:
                    steps = max(1, cfg["cohort_steps"] // size)
                    res = cohort_step_time(pe, D, size, steps, cfg["repeats"])
                    gflops = flop * res["run_steps_per_s"] / 1e9
                    rows[name][str(size)] = {
                        **res, "gflops": gflops,
                        "fraction_of_peak": gflops / peaks[label],
                        "counted_fraction_of_peak":
                            counted * res["run_steps_per_s"] / 1e9 / peaks[label],
                        "speedup_vs_solo_1thread": res["run_steps_per_s"]
                        / stage1[name]["steps_per_s"],
                    }
        out["thread_counts"][label] = {"threads": n_threads, "peak_gflops": peaks[label],
                                       "shapes": rows}
    return out


# Issue 5: the authors' code measured on another host of this machine type (steps/s; Stage 2 with
# evaluation and progress measures every 100 steps: 14-16, taken as 15), and the targets.
ISSUE5_ANCHORS = {"rope_D64": 37.0, "ape_D63": 22.0, "stage2": 22.0, "stage2_cadence": 15.0}
ISSUE5_TARGETS = {"rope_D64": 2.5, "ape_D63": 1.5, "stage2_cadence": 4.0, "cohort_fraction": 0.75}


def targets(result: dict, authors: dict | None = None) -> dict:
    """Our speeds against issue 5's anchors and targets, and (if `authors` is the JSON of
    `python -m benchmarks.authors` on the same host) against the authors' code timed here."""
    ours = {"rope_D64": result["stage1"]["rope_D64"]["steps_per_s"],
            "ape_D63": result["stage1"]["ape_D63"]["steps_per_s"],
            "stage2": result["stage2"]["steps_per_s"],
            "stage2_cadence": result["stage2"]["steps_per_s_with_eval_and_indicators"]}
    out = {}
    for name, value in ours.items():
        row = {"ours_steps_per_s": value, "issue_anchor_steps_per_s": ISSUE5_ANCHORS[name],
               "vs_issue_anchor": value / ISSUE5_ANCHORS[name]}
        if name in ISSUE5_TARGETS:
            row["target"] = ISSUE5_TARGETS[name]
            row["met_vs_issue_anchor"] = row["vs_issue_anchor"] >= ISSUE5_TARGETS[name]
        same_host = (authors or {}).get("authors", {}).get(name, {}).get("steps_per_s")
        if same_host:
            row["authors_same_host_steps_per_s"] = same_host
            row["vs_authors_same_host"] = value / same_host
            if "target" in row:
                row["met_vs_authors_same_host"] = row["vs_authors_same_host"] >= row["target"]
        out[name] = row
    cohort = {}
    for label, block in result["cohort"]["thread_counts"].items():
        for shape, rows in block["shapes"].items():
            best = max(rows.values(), key=lambda r: r["fraction_of_peak"])
            cohort[f"{label}.{shape}"] = {
                "best_fraction_of_peak": best["fraction_of_peak"],
                "best_counted_fraction_of_peak": best["counted_fraction_of_peak"],
                "target": ISSUE5_TARGETS["cohort_fraction"],
                "met": best["fraction_of_peak"] >= ISSUE5_TARGETS["cohort_fraction"]}
    out["cohort"] = cohort
    if authors:
        out["authors_meta"] = {k: authors.get("meta", {}).get(k) for k in ("time_utc", "authors")}
        out["authors_meta"]["cpu_model"] = authors.get("meta", {}).get("host", {}).get("cpu_model")
    return out


PRESETS = {
    "full": dict(steps=40, repeats=5, warmup_steps=5, data_inner=50, set_size=1000,
                 loop_repeats=3, cohort_sizes=[1, 4, 8, 16], cohort_steps=32, matmul_n=2048,
                 matmul_repeats=5),
    "quick": dict(steps=10, repeats=3, warmup_steps=3, data_inner=10, set_size=1000,
                  loop_repeats=1, cohort_sizes=[1, 4], cohort_steps=8, matmul_n=1024,
                  matmul_repeats=3),
}


def run(cfg: dict, authors: dict | None = None) -> dict:
    started = time.perf_counter()
    all_threads = cfg["all_threads"]
    result = {
        "meta": {
            "commit": _git("rev-parse", "HEAD"),
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "threads": cfg["threads"],
            "all_threads": all_threads,
            "host": host_info(),
            "preset": cfg["preset"],
            "settings": {k: v for k, v in cfg.items() if k not in ("preset",)},
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    }
    torch.manual_seed(0)
    with threads(1):
        peak1 = matmul_peak(cfg["matmul_n"], cfg["matmul_repeats"])
    with threads(all_threads):
        peak_all = matmul_peak(cfg["matmul_n"], cfg["matmul_repeats"])
    result["matmul_peak"] = {"n": cfg["matmul_n"], "gflops_1thread": peak1,
                             "gflops_all_threads": peak_all, "all_threads": all_threads}
    peaks = {"1thread": peak1, "all_threads": peak_all}
    with threads(cfg["threads"]):
        result["stage1"] = bench_stage1(cfg, peak1)
        result["data_generation"] = bench_data(cfg)
        result["indicators"] = bench_indicators(cfg)
        result["stage2"] = bench_stage2(cfg, peak1, result["indicators"])
    cfg["cohort_threads"] = {"1thread": 1, "all_threads": all_threads}
    result["cohort"] = bench_cohorts(cfg, peaks, result["stage1"])
    result["targets"] = targets(result, authors)
    result["meta"]["host"]["loadavg_end"] = (list(os.getloadavg())
                                             if hasattr(os, "getloadavg") else None)
    result["meta"]["seconds"] = time.perf_counter() - started
    return result


def summary(result: dict) -> str:
    lines = [f"commit {result['meta']['commit'][:10]}  torch {result['meta']['torch']}  "
             f"threads {result['meta']['threads']}  load {result['meta']['host']['loadavg_start']}"]
    mp = result["matmul_peak"]
    lines.append(f"matmul peak: {mp['gflops_1thread']:.1f} GFLOP/s (1 thread), "
                 f"{mp['gflops_all_threads']:.1f} GFLOP/s ({mp['all_threads']} threads)")
    for name, r in result["stage1"].items():
        lines.append(f"stage1 {name}: {r['steps_per_s']:.1f} steps/s, data share "
                     f"{r['data_share']:.1%}, {r['fraction_of_peak_1thread']:.1%} of peak "
                     f"(6PT; counted matmul FLOPs {r['counted_fraction_of_peak_1thread']:.1%}, "
                     f"ceiling {r['matmul_ceiling_steps_per_s']:.0f} steps/s)")
    d = result["data_generation"]
    lines.append(f"data: unimodal {d['unimodal']['sequences_per_s']:.0f} seq/s, "
                 f"multimodal {d['multimodal']['sequences_per_s']:.0f} seq/s")
    for name, r in result["indicators"].items():
        lines.append(f"indicators {name}: {r['vectorised_ms']:.1f} ms vs loop "
                     f"{r['loop_ms']:.1f} ms (x{r['speedup']:.0f}, max diff {r['max_abs_diff']:.1e}); "
                     f"scores only {r['scores_vectorised_ms']:.2f} ms vs loop {r['scores_loop_ms']:.1f} ms")
    s2 = result["stage2"]
    lines.append(f"stage2: {s2['steps_per_s']:.1f} steps/s train only, "
                 f"{s2['steps_per_s_with_eval_and_indicators']:.1f} with eval + indicators every "
                 f"{s2['cadence_steps']} (loop indicators: "
                 f"{s2['steps_per_s_with_eval_and_loop_indicators']:.1f}), data share "
                 f"{s2['data_share']:.1%}, ceiling {s2['matmul_ceiling_steps_per_s']:.0f} "
                 f"steps/s")
    for label, block in result["cohort"]["thread_counts"].items():
        for name, rows in block["shapes"].items():
            cells = ", ".join(f"{size}: {r['run_steps_per_s']:.1f} ({r['fraction_of_peak']:.0%})"
                              for size, r in rows.items())
            lines.append(f"cohort {label} {name}: run-steps/s (fraction of peak) {cells}")
    for name, t in result["targets"].items():
        if name in ("cohort", "authors_meta"):
            continue
        text = (f"target {name}: {t['ours_steps_per_s']:.1f} steps/s = "
                f"{t['vs_issue_anchor']:.2f}x the issue anchor {t['issue_anchor_steps_per_s']:.0f}")
        if "vs_authors_same_host" in t:
            text += (f", {t['vs_authors_same_host']:.2f}x the authors' code here "
                     f"({t['authors_same_host_steps_per_s']:.1f})")
        if "target" in t:
            text += f" (target {t['target']}x)"
        lines.append(text)
    lines.append(f"total {result['meta']['seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="JSON file to write (default: print only)")
    parser.add_argument("--quick", action="store_true", help="sub-minute run, fewer repeats")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the single-run measurements (default 1, as "
                             "the workflow's threads_per_run)")
    parser.add_argument("--repeats", type=int, help="override: timed repeats per measurement")
    parser.add_argument("--steps", type=int, help="override: training steps per repeat")
    parser.add_argument("--set-size", type=int,
                        help="override: sequences per evaluation / indicator set (default 1000)")
    parser.add_argument("--cohort-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        help="override: comma-separated cohort sizes")
    parser.add_argument("--authors", type=Path,
                        help="JSON of `python -m benchmarks.authors` measured on this host: "
                             "report our speeds against it as well as against issue 5's anchors")
    args = parser.parse_args(argv)
    authors = None
    if args.authors is not None:
        try:
            authors = json.loads(args.authors.read_text())
            if not isinstance(authors.get("authors"), dict):
                raise ValueError("no 'authors' block")
        except (OSError, ValueError, AttributeError) as exc:
            parser.error(f"--authors {args.authors}: not a benchmarks.authors result ({exc})")
    preset = "quick" if args.quick else "full"
    cfg = dict(PRESETS[preset], preset=preset, threads=args.threads,
               all_threads=os.cpu_count() or 1)
    for key in ("repeats", "steps", "set_size", "cohort_sizes"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.repeats is not None:
        cfg["loop_repeats"] = min(cfg["loop_repeats"], args.repeats)
        cfg["matmul_repeats"] = min(cfg["matmul_repeats"], args.repeats)
    if args.steps is not None:
        cfg["warmup_steps"] = min(cfg["warmup_steps"], args.steps)
        cfg["cohort_steps"] = min(cfg["cohort_steps"], args.steps)
    result = run(cfg, authors)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(summary(result), file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
