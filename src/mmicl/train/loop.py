"""The training loop, one for every run: a cohort of M >= 1 members trained together.

Each member keeps its own data generator (seeded from its run seed), its evaluation sets, its
running train loss, its snapshots and its curve; M = 1 is a run trained alone. The model step is
either the member's own module (`Solo`, M = 1) or the members stacked under vmap
(`mmicl.train.stacking.Stack`, M >= 1) — the same modules, so a member ends like its solo run
up to float rounding. The loop evaluates at iteration 0 and at `TrainConfig.test_iterations()`,
keeps snapshots at `snapshot_iterations()`, checkpoints its whole state every `checkpoint_every`
steps (a rerun resumes and ends bit-identical to an uninterrupted run), and writes every member's
outputs atomically at the end, so a killed job leaves nothing that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mmicl import io
from mmicl.analysis.evaluate import evaluate, forward, mean_attention
from mmicl.monitor import PROGRESS_FILE
from mmicl.specs import TrainConfig
from mmicl.train.members import Member
from mmicl.train.outputs import Snapshots, write_outputs
from mmicl.train.stacking import Stack

# Devices with PyTorch's single-kernel ("fused") optimizer steps; elsewhere the foreach default.
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer; fused where the parameters' device has it (the same update
    rule in one kernel per step instead of a few per parameter)."""
    params = list(params)
    fused = bool(params) and all(p.device.type in FUSED_OPTIMIZER_DEVICES for p in params)
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "fused": fused or None}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, **kwargs)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


class Solo:
    """The model step of one member: its own module, no stacking."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def logits(self, batches: Sequence) -> torch.Tensor:
        (batch,) = batches
        return forward(self.model, batch, validate=False)[None]

    def load_into(self, i: int, model: torch.nn.Module) -> torch.nn.Module:
        return self.model

    def restore(self, i: int, state: dict) -> None:
        """Only stacked cohorts keep training past a member's stop (a solo run ends there)."""

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


def train_step(engine, optimizer: torch.optim.Optimizer, batches: Sequence
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One optimizer step of every member: (per-member mean losses (M,), logits (M, S, C),
    targets (M, S)). The loss is the sum of the members' mean cross-entropies, so each member's
    gradient is its solo gradient. The benchmarks time exactly this."""
    logits = engine.logits(batches)
    targets = torch.stack([b.targets for b in batches])
    M, S, C = logits.shape
    if M == 1:  # the plain mean reduction, bit for bit as a run trained alone
        losses = F.cross_entropy(logits[0], targets[0])[None]
    else:
        losses = F.cross_entropy(logits.reshape(M * S, C), targets.reshape(M * S),
                                 reduction="none").view(M, S).mean(1)
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    optimizer.step()
    return losses.detach(), logits.detach(), targets


class Windows:
    """Per-member running train loss / accuracy between evaluations, kept on the device."""

    def __init__(self, M: int, device):
        self.M, self.device = M, device
        self.reset()

    def reset(self):
        self.loss = torch.zeros(self.M, device=self.device)
        self.correct = torch.zeros(self.M, device=self.device, dtype=torch.long)
        self.count = 0

    def add(self, losses, logits, targets):
        S = targets.shape[1]
        self.loss += losses * S
        self.correct += (logits.argmax(-1) == targets).sum(1)
        self.count += S

    def summary(self, i: int) -> dict | None:
        if not self.count:
            return None
        return {"loss": self.loss[i].item() / self.count,
                "accuracy": self.correct[i].item() / self.count}

    def state(self):
        return {"loss": self.loss, "correct": self.correct, "count": self.count}

    def load(self, state):
        self.loss, self.correct, self.count = state["loss"], state["correct"], state["count"]


def _fingerprint(members: Sequence[Member], stacked: bool) -> str:
    text = json.dumps({"members": [m.spec.fingerprint() for m in members],
                       "stacked": stacked}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check(members: Sequence[Member], stacked: bool) -> TrainConfig:
    if not members:
        raise ValueError("a cohort needs at least one member")
    if not stacked and len(members) != 1:
        raise ValueError(f"{len(members)} members: train them stacked, or one at a time")
    dirs = [m.out_dir.resolve() for m in members]
    if len(set(dirs)) != len(dirs):
        raise ValueError("two cohort members write to the same out_dir")
    train = members[0].spec.train
    for m in members:
        if m.spec.train != train:
            raise ValueError(f"{m.spec!r} trains with {m.spec.train}, but {members[0].spec!r} "
                             f"with {train}; a cohort shares one train config")
    return train


def fit(members: Sequence[Member], device, stacked: bool = False,
        checkpoint: str | Path | None = None, progress: bool = True,
        write: bool = True) -> list[pd.DataFrame]:
    """Train `members` (M = 1, or M >= 1 stacked); write each member's outputs (unless
    write=False) and return the learning curves. `checkpoint`: the resume file (None: a killed
    job starts again)."""
    members = list(members)
    cfg = _check(members, stacked)
    M = len(members)
    engine = Stack([m.model for m in members]) if stacked else Solo(members[0].model)
    optimizer = make_optimizer(engine.trainable(), cfg)
    gens = [torch.Generator(device=device).manual_seed(m.spec.seeds.train_data) for m in members]
    windows = Windows(M, device)
    rows: list[list[dict]] = [[] for _ in members]
    snapshots = [Snapshots() for _ in members]
    eval_at, test_at = set(cfg.eval_iterations()), set(cfg.test_iterations())
    snapshot_at = set(cfg.snapshot_iterations())
    step = 0
    stopped: dict[int, int] = {}  # member -> the step it reached cfg.stop_at_ic (stop rule)
    fingerprint = _fingerprint(members, stacked)

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = io.load_torch(checkpoint, map_location=device)
        if state.get("fingerprint") == fingerprint:
            engine.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            for g, s in zip(gens, state["data_gens"]):
                g.set_state(s.cpu() if str(device) == "cpu" else s)
            windows.load(state["window"])
            rows = [list(r) for r in state["rows"]]
            snapshots = [Snapshots.from_dict(s, str(checkpoint)) for s in state["snapshots"]]
            step = int(state["step"])
            stopped = {int(i): int(at) for i, at in state.get("stopped", {}).items()}
            print(f"resuming {_label(members)} from step {step} ({checkpoint})", file=sys.stderr)
        else:
            print(f"ignoring {checkpoint}: it belongs to another configuration", file=sys.stderr)

    def log_eval(iteration: int) -> None:
        """Every test set at `iteration`; at a logged evaluation also the train window's mean,
        and the stop rule: a member whose IC accuracy reached cfg.stop_at_ic stops here."""
        with_train = iteration in eval_at
        for i, m in enumerate(members):
            if i in stopped:
                continue
            model = engine.load_into(i, m.model)
            for name, res in evaluate(model, m.test_sets, m.modulus).items():
                rows[i].append({"iteration": iteration, "split": name, **res})
            train = windows.summary(i) if with_train else None
            if train is not None:
                rows[i].append({"iteration": iteration, "split": "train", **train})
        if with_train:
            windows.reset()
        for i, m in enumerate(members):
            if i in stopped:
                continue
            ic = next((r["accuracy"] for r in reversed(rows[i]) if r["split"] == "IC"), 0.0)
            if cfg.stop_at_ic and with_train and iteration > 0 and ic >= cfg.stop_at_ic:
                stopped[i] = iteration
                if iteration not in snapshot_at:  # the weights it stops with
                    snapshots[i].add(engine.load_into(i, m.model), iteration)
            write_progress(m.out_dir, rows[i], iteration, cfg.iterations, started_at, start_step)

    started_at, start_step = time.time(), step
    if step == 0:
        log_eval(0)
        for i, m in enumerate(members):
            snapshots[i].add(engine.load_into(i, m.model), 0)
    started = time.perf_counter()
    bar = tqdm(total=cfg.iterations, initial=step, disable=not progress, mininterval=5,
               desc=_label(members), file=sys.stderr)
    for m in members:
        m.model.train()
    while step < cfg.iterations and len(stopped) < M:
        losses, logits, targets = train_step(engine, optimizer, [m.sample(g) for m, g in
                                                                 zip(members, gens)])
        for i, at in stopped.items():  # a stopped member of a stacked cohort keeps its weights
            engine.restore(i, snapshots[i].state(at))
        windows.add(losses, logits, targets)
        step += 1
        bar.update(1)
        if step in test_at:
            log_eval(step)
            bar.set_postfix_str(_postfix(rows, losses), refresh=False)
        if step in snapshot_at:
            for i, m in enumerate(members):
                if i not in stopped or stopped[i] == step:
                    snapshots[i].add(engine.load_into(i, m.model), step)
        if checkpoint is not None and step % cfg.checkpoint_every == 0 and step < cfg.iterations:
            io.save_torch({
                "fingerprint": fingerprint, "step": step, "model": engine.state_dict(),
                "optimizer": optimizer.state_dict(), "data_gens": [g.get_state() for g in gens],
                "window": windows.state(), "rows": rows,
                "snapshots": [s.to_dict() for s in snapshots], "stopped": stopped,
            }, checkpoint)
    bar.close()
    elapsed = time.perf_counter() - started

    curves = []
    for i, m in enumerate(members):
        model = engine.load_into(i, m.model)
        model.eval()
        curve = pd.DataFrame(rows[i])
        curves.append(curve)
        if write:
            attention = mean_attention(model, m.test_sets["IC"], m.spec.eval.attention_sequences)
            attention.insert(0, "split", "IC")
            write_outputs(m.out_dir, m.spec, model, m.test_sets, m.save_test_sets, curve,
                          snapshots[i], attention, train_seconds_this_process=round(elapsed, 3),
                          cohort={"size": M, "index": i, "stacked": stacked}, **m.record)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return curves


def write_progress(out_dir: Path, rows: list[dict], step: int, total: int, started_at: float,
                   start_step: int) -> None:
    """progress.json beside the run's outputs (read by `mmicl progress`, also on a cluster):
    the step, the latest IC/IW accuracy and train loss, and this process's speed."""
    latest = {r["split"]: r for r in rows if r["iteration"] == step}
    elapsed = time.time() - started_at
    io.write_json({"step": step, "total": total, "updated": time.time(),
                   "steps_per_s": (step - start_step) / elapsed if elapsed > 0 else None,
                   "IC": latest.get("IC", {}).get("accuracy"),
                   "IW": latest.get("IW", {}).get("accuracy"),
                   "loss": latest.get("train", {}).get("loss")}, out_dir / PROGRESS_FILE)


def _label(members: Sequence[Member]) -> str:
    return repr(members[0].spec) if len(members) == 1 else f"stacked cohort of {len(members)}"


def _postfix(rows: list[list[dict]], losses: torch.Tensor) -> str:
    """Per-member loss and IC accuracy for the progress bar."""
    parts = []
    for i, member_rows in enumerate(rows):
        ic = next((r["accuracy"] for r in reversed(member_rows) if r["split"] == "IC"), None)
        parts.append(f"{losses[i].item():.3f}/{ic:.2f}" if ic is not None else "")
    return "loss/IC " + " ".join(parts)
