"""Same-machine anchor: the authors' own training throughput, timed on this host.

    python -m benchmarks.authors --repo /tmp/authors --out /tmp/authors_anchor.json

`--repo` is a checkout of github.com/YiranHuangIrene/multimodal-icl (commit 3a41ad3). Its modules
are imported from that path (sys.path); none of their code is copied here. What is timed is the
body of their training loop (`train()` in main_stage1.py / main_stage2.py), one step =
their data generation for one batch (`ICLDataset.generate_sequence` / `MMDataset.generate_sequence`,
what their DataLoader worker calls), `model.train()`, `zero_grad`, forward, `CrossEntropyLoss`,
their `accuracy`, backward and their optimiser (SGD, lr 1e-3, wd 1e-6). Serial: their
`DataLoader(num_workers=1)` would run the generator in a second process, so `train_ms` (step
minus data) and `steps_per_s_if_data_overlapped` are reported alongside.

Shapes (batch 128, N=8, L=32, K=8192, B=4, p_B=1, p_C=0, eps=0.1, alpha=0, 2 layers, 1 head,
RMSNorm; the rest their defaults): Stage 1 RoPE D=64 (width 64, ~52K parameters), Stage 1 APE
D=63 (width 2*32+1+63 = 128, ~202K parameters) and Stage 2 (K1=8192 APE D1=63, K2=256, D2=64,
L_pos=65, `layers.*` frozen as their freeze_layers=1, train only, no evaluation; the decoder is
randomly initialised instead of loaded from a Stage-1 checkpoint, which does not change the cost;
`stage2` is our suite's shape, `stage2_rope_D64` the same with their RoPE decoder, D1=64, as an
extra point because issue 5 does not name the PE of its Stage-2 anchor).
One torch thread; the shapes' repeats are interleaved; medians of `repeats` timings of `steps`
steps after `warmup` steps.

The anchors in issue 5 (measured on another host of this machine type) were: Stage 1 RoPE-D64
37 steps/s, Stage 1 APE-D63 22 steps/s, Stage 2 22 steps/s train only.

Their imports of torchvision (image datasets), einops (image encoders) and wandb are replaced by
stub modules when those packages are not installed; none of the timed code uses them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

from benchmarks.run import _git, host_info

# steps/s on another host; issue 5 does not say which PE its Stage-2 anchor used
ANCHORS_ISSUE5 = {"rope_D64": 37.0, "ape_D63": 22.0, "stage2": 22.0, "stage2_rope_D64": 22.0}
BATCH, N, L, K, NMAX = 128, 8, 32, 8192, 32
DATA = dict(B=4, p_B=1.0, p_C=0.0, eps=0.1, alpha=0.0, no_repeats=False)
K2, D2, L_POS = 256, 64, 65
LR, WD = 1e-3, 1e-6


def _stub_missing() -> list[str]:
    """Stub modules for the authors' imports that the timed code never uses, if not installed."""

    class _Unavailable:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("stubbed by benchmarks.authors: package not installed")

    stubs = {"torchvision": {}, "torchvision.datasets": {"Omniglot": _Unavailable,
                                                         "CIFAR100": _Unavailable},
             "einops": {}, "einops.layers": {}, "einops.layers.torch": {"Rearrange": _Unavailable},
             "wandb": {}}
    missing = {top for top in ("torchvision", "einops", "wandb")
               if importlib.util.find_spec(top) is None}
    done = []
    for name, attrs in stubs.items():  # parents before children
        if name.split(".")[0] in missing:
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
            if "." in name:
                parent, child = name.rsplit(".", 1)
                setattr(sys.modules[parent], child, module)
            done.append(name)
    return done


def _authors_commit(repo: Path) -> dict:
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown (not a git checkout)"
    sha = {f: hashlib.sha256((repo / f).read_bytes()).hexdigest()[:16]
           for f in ("dataset.py", "model.py", "main_stage1.py", "main_stage2.py")}
    return {"path": str(repo), "commit": commit, "sha256_16": sha}


def stage1_case(a, rope: bool, D: int):
    """main_stage1.py's __main__ setup for one run; returns (model, step callable)."""
    dataset, model_mod, main1 = a["dataset"], a["model"], a["main_stage1"]
    input_dim = D if rope else 2 * NMAX + 1 + D
    args = model_mod.ModelArgs(dim=input_dim, n_layers=2, n_heads=1, n_labels=L,
                               max_position_embeddings=2 * N + 1, rope_theta=10000,
                               mlp_bias=True, rms_norm=True, rope=rope, norm_eps=1e-5,
                               use_alibi=False, use_hybrid=False)
    model = model_mod.Transformer(args)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD)
    P = 1.0 / (np.arange(1, K + 1) ** DATA["alpha"])
    P /= P.sum()
    mus_label, mus_class, labels_class = dataset.get_mus_label_class(K, L, D)
    data = dataset.ICLDataset(mus_label=mus_label, mus_class=mus_class, labels_class=labels_class,
                              N=N, S=BATCH, Nmax=NMAX, eps=DATA["eps"], B=DATA["B"],
                              p_B=DATA["p_B"], p_C=DATA["p_C"], P=P, datasize=1,
                              no_repeats=DATA["no_repeats"], rope=rope, hybrid=False)
    return model, _loop_body(model, optimizer, data.generate_sequence, main1.accuracy)


def stage2_case(a, rope: bool, D1: int):
    """main_stage2.py's __main__ setup: freeze_layers=1, early_fusion=0, no checkpoint load."""
    dataset, model_mod, main2 = a["dataset"], a["model"], a["main_stage2"]
    args = model_mod.ModelArgs(m1_dim=D1, m2_dim=D2, dim=D1 if rope else L_POS + D1, n_layers=2,
                               n_heads=1, n_labels=L, max_position_embeddings=3 * N + 2,
                               rope_theta=10000, mlp_bias=True, rms_norm=True, rope=rope,
                               norm_eps=1e-5, L_pos=L_POS)
    model = model_mod.MMTransformer(args)
    for p in model.layers.parameters():
        p.requires_grad = False
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, weight_decay=WD)
    P1 = np.ones(K) / K  # their Zipf formula at alpha1 = alpha2 = 0
    P2 = np.ones(K2) / K2
    (mus_label_m1, mus_class_m1, _, mus_label_m2, mus_class_m2, labels_class_m2,
     mapping) = dataset.get_mm_mus_label_class(K1=K, K2=K2, L1=L, L2=L, D1=D1, D2=D2)
    data = dataset.MMDataset(mus_label_m1=mus_label_m1, mus_class_m1=mus_class_m1,
                             mus_label_m2=mus_label_m2, mus_class_m2=mus_class_m2,
                             labels_class_m2=labels_class_m2, mapping_m2_to_m1=mapping, N=N,
                             S=BATCH, eps1=DATA["eps"], eps2=DATA["eps"], P1=P1, P2=P2,
                             B=DATA["B"], p_B=DATA["p_B"], p_C=DATA["p_C"],
                             no_repeats=DATA["no_repeats"], datasize=1)
    return model, _loop_body(model, optimizer, data.generate_sequence, main2.accuracy)


def _loop_body(model, optimizer, generate, accuracy):
    """One iteration of their train(): returns the seconds spent generating data."""
    loss_criterion = torch.nn.CrossEntropyLoss()

    def step() -> float:
        t0 = time.perf_counter()
        *inputs, labels = generate()
        data_s = time.perf_counter() - t0
        model.train()
        optimizer.zero_grad()
        outputs = model(*inputs)
        loss = loss_criterion(outputs, labels)
        accuracy(outputs, labels)
        loss.backward()
        optimizer.step()
        return data_s

    return step


def run(repo: Path, steps: int, repeats: int, warmup: int, with_ours: bool = False) -> dict:
    stubbed = _stub_missing()
    sys.path.insert(0, str(repo))
    import dataset
    import main_stage1
    import main_stage2
    import model
    a = {"dataset": dataset, "model": model, "main_stage1": main_stage1, "main_stage2": main_stage2}

    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    started = time.perf_counter()
    meta = {"commit": _git("rev-parse", "HEAD"),
            "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
            "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "threads": torch.get_num_threads(),
            "host": host_info(), "authors": _authors_commit(repo), "stubbed_modules": stubbed,
            "settings": {"steps": steps, "repeats": repeats, "warmup": warmup, "batch": BATCH,
                         "N": N, "L": L, "K": K, "K2": K2, "D2": D2, "L_pos": L_POS,
                         "optimizer": "SGD", "lr": LR, "weight_decay": WD, **DATA},
            "anchors_issue5_steps_per_s": ANCHORS_ISSUE5,
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    cases = {"rope_D64": stage1_case(a, True, 64), "ape_D63": stage1_case(a, False, 63),
             "stage2": stage2_case(a, False, 63), "stage2_rope_D64": stage2_case(a, True, 64)}
    if with_ours:  # our step at the same shapes, timed in the same rounds (host noise cancels)
        cases.update({f"ours.{name}": case for name, case in ours_cases().items()})
    for _, step in cases.values():
        for _ in range(warmup):
            step()
    totals = {name: [] for name in cases}
    datas = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved: every shape once per round
        for name, (_, step) in cases.items():
            t0 = time.perf_counter()
            data_s = sum(step() for _ in range(steps))
            totals[name].append((time.perf_counter() - t0) / steps)
            datas[name].append(data_s / steps)

    results, ours = {}, {}
    for name, (m, _) in cases.items():
        if name.startswith("ours."):
            theirs = totals[name[len("ours."):]]
            ratios = [t / o for t, o in zip(theirs, totals[name])]  # per round: our speedup
            ours[name[len("ours."):]] = {
                "steps_per_s": 1 / statistics.median(totals[name]),
                "step_ms_repeats": [t * 1e3 for t in totals[name]],
                "speedup_per_round": ratios, "speedup_median": statistics.median(ratios)}
            continue
        step_s, data_s = statistics.median(totals[name]), statistics.median(datas[name])
        train_s = step_s - data_s
        results[name] = {
            "params": sum(p.numel() for p in m.parameters()),
            "trainable_params": sum(p.numel() for p in m.parameters() if p.requires_grad),
            "steps_per_s": 1 / step_s, "step_ms": step_s * 1e3, "data_ms": data_s * 1e3,
            "train_ms": train_s * 1e3, "data_share": data_s / step_s,
            "steps_per_s_if_data_overlapped": 1 / max(data_s, train_s),
            "step_ms_repeats": [t * 1e3 for t in totals[name]],
            "anchor_issue5_steps_per_s": ANCHORS_ISSUE5[name],
        }
    meta["host"]["loadavg_end"] = list(os.getloadavg())
    meta["seconds"] = time.perf_counter() - started
    out = {"meta": meta, "authors": results}
    if with_ours:
        out["ours_interleaved"] = ours
    return out


def ours_cases() -> dict:
    """Our training step (benchmarks.run.train_step: Adam, as the laptop tier) at the shapes the
    authors' cases time; Stage 2 only for the APE decoder (our benchmark's shape)."""
    from benchmarks.run import stage1_setup, stage2_setup, train_step
    from mmicl.data.multimodal import generate_multimodal
    from mmicl.data.sequences import generate_sequences
    from mmicl.models.decoder import Decoder
    from mmicl.models.multimodal import MultimodalDecoder
    from mmicl.train.members import init_model

    cases = {}
    for name, (pe, D) in {"rope_D64": ("rope", 64), "ape_D63": ("ape", 63)}.items():
        world, seq, cfg = stage1_setup(pe, D)
        model = init_model(lambda cfg=cfg: Decoder(cfg), 0, "cpu")
        cases[name] = (model, train_step(
            model, lambda g, w=world, s=seq: generate_sequences(w, s, BATCH, g)))
    world, spec, cfg = stage2_setup()
    model = init_model(lambda: MultimodalDecoder(cfg), 0, "cpu")
    model.freeze_decoder()
    cases["stage2"] = (model, train_step(
        model, lambda g: generate_multimodal(world, spec, BATCH, g)))
    return cases


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.authors", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, required=True, help="checkout of the authors' code")
    parser.add_argument("--out", type=Path, help="JSON file to write (default: print only)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per shape")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per shape")
    parser.add_argument("--with-ours", action="store_true",
                        help="also time our step at the same shapes in the same rounds and "
                             "report our speedup per round (robust to host noise)")
    args = parser.parse_args(argv)
    result = run(args.repo.resolve(), args.steps, args.repeats, args.warmup, args.with_ours)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)
    for name, r in result["authors"].items():
        print(f"authors {name}: {r['steps_per_s']:.1f} steps/s (anchor "
              f"{r['anchor_issue5_steps_per_s']:.0f}); step {r['step_ms']:.1f} ms = data "
              f"{r['data_ms']:.1f} + train {r['train_ms']:.1f}; params {r['params']}",
              file=sys.stderr)
    for name, r in result.get("ours_interleaved", {}).items():
        print(f"ours {name}: {r['steps_per_s']:.1f} steps/s, speedup over the authors' "
              f"{r['speedup_median']:.2f}x (per round: "
              f"{', '.join(f'{x:.2f}' for x in r['speedup_per_round'])})", file=sys.stderr)
    print(f"load {result['meta']['host']['loadavg_start']} -> "
          f"{result['meta']['host']['loadavg_end']}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
