"""Training of one run (Stage 1: unimodal; Stage 2: multimodal fusion) with fixed evaluation
sets, periodic evaluation and kill-safe resume; both stages share one loop, `fit`.

One run = one world, one sequence spec, one model config, one seed. Three independent seeds are
derived from the run seed (model init, training data, evaluation data) and recorded in config.json.
The full training state (weights, optimizer, data-generator state, curve so far) is checkpointed
every `checkpoint_every` steps to ``resume.pt``; a rerun after a kill continues from there and ends
bit-identical to an uninterrupted run (the training stream depends only on the generator state).
Outputs are written atomically at the end, so a killed job leaves nothing that looks complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from mmicl import io, paths
from mmicl.config import TrainConfig, derive_seed
from mmicl.data.sequences import SequenceSpec, generate_sequences, make_test_sets, save_batches
from mmicl.data.worlds import World
from mmicl.evaluate import evaluate, forward, mean_attention
from mmicl.models.decoder import Decoder, DecoderConfig


@dataclass(frozen=True)
class RunSeeds:
    run: int
    init: int
    train_data: int
    eval_data: int

    @classmethod
    def from_run_seed(cls, seed: int) -> "RunSeeds":
        return cls(seed, derive_seed(seed, "init"), derive_seed(seed, "train-data"),
                   derive_seed(seed, "eval-data"))


# Devices with PyTorch's single-kernel ("fused") optimizer steps; elsewhere the foreach default.
FUSED_OPTIMIZER_DEVICES = ("cpu", "cuda")


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer; its fused implementation where the parameters' device has one
    (the same update rule in one kernel per step instead of a few per parameter: a tenth of a
    small model's step on CPU)."""
    params = list(params)
    fused = bool(params) and all(p.device.type in FUSED_OPTIMIZER_DEVICES for p in params)
    kwargs = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "fused": fused or None}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, **kwargs)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kwargs)
    return torch.optim.AdamW(params, **kwargs)


def init_model(build: Callable[[], torch.nn.Module], seed: int, device) -> torch.nn.Module:
    """Build a model from its own RNG stream, leaving the global torch RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.to(device)


class _TrainWindow:
    """Running train loss/accuracy between two evaluations, kept on the device (no sync per step)."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self):
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), device=self.device)
        self.count = 0

    def add(self, loss, logits, targets):
        self.loss += loss.detach() * targets.shape[0]
        self.correct += (logits.argmax(-1) == targets).sum()
        self.count += targets.shape[0]

    def summary(self) -> dict | None:
        if not self.count:
            return None
        return {"loss": self.loss.item() / self.count, "accuracy": self.correct.item() / self.count}

    def state(self):
        return {"loss": self.loss, "correct": self.correct, "count": self.count}

    def load(self, state):
        self.loss, self.correct, self.count = state["loss"], state["correct"], state["count"]


class Snapshots:
    """Weights at the iterations of `TrainConfig.snapshot_iterations()`, for the indicator step.

    The full state is kept once (iteration 0); later snapshots keep only the tensors that can
    change (trainable parameters), so a frozen Stage-2 decoder is stored once, not per snapshot.
    Written as ``snapshots.pt`` = {"iterations", "base", "deltas"}; `state(it)` rebuilds a full
    state dict loadable into the run's model.
    """

    def __init__(self, base: dict | None = None, deltas: dict | None = None):
        self.base = base
        self.deltas = dict(deltas or {})

    def add(self, model: torch.nn.Module, iteration: int) -> None:
        if self.base is None:
            self.base = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.deltas[iteration] = {}
            return
        self.deltas[iteration] = {name: p.detach().clone()
                                  for name, p in model.named_parameters() if p.requires_grad}

    @property
    def iterations(self) -> list[int]:
        return sorted(self.deltas)

    def state(self, iteration: int) -> dict:
        if iteration not in self.deltas:
            raise KeyError(f"no snapshot at iteration {iteration}; have {self.iterations}")
        return {**self.base, **self.deltas[iteration]}

    def to_dict(self) -> dict:
        return {"iterations": self.iterations, "base": self.base, "deltas": self.deltas}

    @classmethod
    def from_dict(cls, data: dict, where: str = "snapshots") -> "Snapshots":
        try:
            snaps = cls(data["base"], data["deltas"])
            if snaps.iterations != sorted(data["iterations"]) or snaps.base is None:
                raise ValueError("iteration list does not match the stored snapshots")
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: not a snapshot file ({exc})") from None
        return snaps

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> "Snapshots":
        return cls.from_dict(io.load_torch(path, map_location=map_location), str(path))


def spec_hash(spec: dict) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


# The library source a trained run depends on: a run is only reused (see `is_trained`) when it was
# trained by this exact code. Figures, indicators and analyses read runs but never shape them.
TRAINING_SOURCES = ("config.py", "train.py", "cohort.py", "evaluate.py", "io.py", "paths.py",
                    "cli.py", "data", "models")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Hash of the training code (TRAINING_SOURCES), written to every run's config.json."""
    root = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for entry in TRAINING_SOURCES:
        files = sorted((root / entry).rglob("*.py")) if (root / entry).is_dir() else [root / entry]
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def is_trained(out_dir: str | Path, fingerprint: str) -> bool:
    """True iff `out_dir` holds every output of the run with this spec fingerprint, trained by
    the current training code (config.json is written last, so it marks a complete run)."""
    out_dir = Path(out_dir)
    if not all((out_dir / name).is_file() for name in paths.RUN_FILES):
        return False
    try:
        written = json.loads((out_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return written.get("fingerprint") == fingerprint and written.get("code_version") == code_version()


def train_run(
    world: World,
    seq: SequenceSpec,
    model_cfg: DecoderConfig,
    train_cfg: TrainConfig,
    out_dir: str | Path,
    seed: int,
    test_set_size: int = 1000,
    attention_sequences: int = 256,
    device: str = "cpu",
    meta: dict | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Train one Stage-1 run and write model.pt, snapshots.pt, testsets.pt, curve.parquet,
    final.parquet, attention.parquet and config.json into `out_dir`. Returns the learning curve."""
    member = stage1_member(world, seq, model_cfg, train_cfg, out_dir, seed, test_set_size,
                           device, meta)
    return fit_member(member, device, attention_sequences, progress)


def fit_member(member: "Member", device, attention_sequences: int,
               progress: bool) -> pd.DataFrame:
    """`fit` one run set up by stage1_member / stage2_member (with its own train_cfg)."""
    return fit(
        member.model, member.model.parameters(), member.sample, member.test_sets,
        member.n_labels, member.train_cfg, member.out_dir, member.spec, member.seeds, device,
        save_test_sets=member.save_test_sets, attention_sequences=attention_sequences,
        progress=progress,
    )


def fit(
    model: torch.nn.Module,
    parameters,
    sample: Callable[[torch.Generator], object],
    test_sets: dict,
    n_labels: int,
    train_cfg: TrainConfig,
    out_dir: str | Path,
    spec: dict,
    seeds: RunSeeds,
    device: str,
    save_test_sets: Callable,
    attention_sequences: int = 256,
    progress: bool = True,
) -> pd.DataFrame:
    """The training loop shared by every stage: `sample(generator)` draws one training batch.
    Evaluates at iteration 0 and every eval_every steps, checkpoints the full state for resume,
    and writes all outputs atomically at the end."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = spec_hash(spec)
    optimizer = make_optimizer([p for p in parameters if p.requires_grad], train_cfg)
    data_gen = torch.Generator(device=device).manual_seed(seeds.train_data)
    window = _TrainWindow(device)
    rows: list[dict] = []
    step = 0
    snapshot_at = set(train_cfg.snapshot_iterations())
    snapshots = Snapshots()

    resume_path = paths.resume_checkpoint(out_dir)
    if resume_path.exists():
        state = io.load_torch(resume_path, map_location=device)
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            data_gen.set_state(state["data_gen"].cpu() if str(device) == "cpu" else state["data_gen"])
            window.load(state["window"])
            rows, step = list(state["rows"]), int(state["step"])
            snapshots = Snapshots.from_dict(state["snapshots"], str(resume_path))
            print(f"resuming {out_dir} from step {step}", file=sys.stderr)
        else:
            print(f"ignoring {resume_path}: it belongs to a different configuration", file=sys.stderr)

    def log_eval(iteration: int):
        for name, m in evaluate(model, test_sets, n_labels).items():
            rows.append({"iteration": iteration, "split": name, **m})
        train = window.summary()
        if train is not None:
            rows.append({"iteration": iteration, "split": "train", **train})
        window.reset()

    if step == 0:
        log_eval(0)
        snapshots.add(model, 0)
    started = time.perf_counter()
    model.train()
    label = spec.get("meta", {}).get("run", out_dir.name)
    bar = tqdm(total=train_cfg.iterations, initial=step, disable=not progress, mininterval=5,
               desc=str(label), file=sys.stderr)
    while step < train_cfg.iterations:
        batch = sample(data_gen)
        logits = forward(model, batch)
        loss = F.cross_entropy(logits, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.add(loss, logits, batch.targets)
        step += 1
        bar.update(1)
        if step % train_cfg.eval_every == 0 or step == train_cfg.iterations:
            log_eval(step)
            ic = next(r["accuracy"] for r in reversed(rows) if r["split"] == "IC")
            bar.set_postfix(loss=f"{loss.item():.3f}", IC=f"{ic:.2f}", refresh=False)
        if step in snapshot_at:
            snapshots.add(model, step)
        if step % train_cfg.checkpoint_every == 0 and step < train_cfg.iterations:
            io.save_torch({
                "fingerprint": fingerprint, "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "data_gen": data_gen.get_state(),
                "window": window.state(), "rows": rows, "snapshots": snapshots.to_dict(),
            }, resume_path)
    bar.close()
    elapsed = time.perf_counter() - started

    curve = pd.DataFrame(rows)
    final = curve[curve.iteration == curve.iteration.max()].copy()
    attention = mean_attention(model, test_sets["IC"], attention_sequences)
    attention.insert(0, "split", "IC")

    save_test_sets(test_sets, out_dir / "testsets.pt")
    io.save_torch(model.state_dict(), out_dir / "model.pt")
    io.save_torch(snapshots.to_dict(), out_dir / "snapshots.pt")
    io.write_parquet(curve, out_dir / "curve.parquet")
    io.write_parquet(final, out_dir / "final.parquet")
    io.write_parquet(attention, out_dir / "attention.parquet")
    io.write_json({
        **spec, "fingerprint": fingerprint, "code_version": code_version(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_seconds_this_process": round(elapsed, 3),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "command": sys.argv,
    }, out_dir / "config.json")
    resume_path.unlink(missing_ok=True)
    return curve


def train_stage2(
    world,
    spec,
    model_cfg,
    train_cfg: TrainConfig,
    out_dir: str | Path,
    seed: int,
    stage1_state: dict | None,
    freeze_decoder: bool = True,
    freeze_head: bool = False,
    test_set_size: int = 1000,
    attention_sequences: int = 256,
    device: str = "cpu",
    meta: dict | None = None,
    progress: bool = True,
    joint_G2: int | None = None,
) -> pd.DataFrame:
    """Train one Stage-2 run: the Stage-1 decoder (`stage1_state`; None = early fusion from
    scratch) plus a fresh projector on interleaved triplets. Same outputs as Stage 1.
    joint_G2: joint-label sequences with that many M2 groups (labels span all of L1)."""
    member = stage2_member(world, spec, model_cfg, train_cfg, out_dir, seed, stage1_state,
                           freeze_decoder, freeze_head, test_set_size, device, meta, joint_G2)
    return fit_member(member, device, attention_sequences, progress)


# ---------------------------------------------------------------------------------------------
# a run set up for training: everything `fit` needs (shared with mmicl.cohort)


@dataclass
class Member:
    """One run of a cohort, initialised exactly like its solo run (`train_run` / `train_stage2`).

    model: the solo module (initial weights; also used for evaluation and outputs)
    sample: draws one training batch from the member's own generator
    spec: the resolved spec dict the solo run writes to config.json (its hash is the fingerprint)
    """

    model: torch.nn.Module
    sample: Callable[[torch.Generator], object]
    test_sets: dict
    n_labels: int  # label modulus for IC2 targets (evaluate's n_labels)
    out_dir: Path
    spec: dict
    seeds: RunSeeds
    save_test_sets: Callable
    train_cfg: TrainConfig | None = None

    @property
    def fingerprint(self) -> str:
        return spec_hash(self.spec)


def stage1_member(world: World, seq: SequenceSpec, model_cfg: DecoderConfig,
                  train_cfg: TrainConfig, out_dir: str | Path, seed: int,
                  test_set_size: int = 1000, device: str = "cpu",
                  meta: dict | None = None) -> Member:
    """The Stage-1 run `train.train_run` would train with the same arguments."""
    seeds = RunSeeds.from_run_seed(seed)
    spec = {
        "meta": meta or {},
        "world": {"seed": world.seed, "K": world.K, "L": world.L, "D": world.D},
        "sequences": asdict(seq),
        "model": asdict(model_cfg),
        "train": asdict(train_cfg),
        "seeds": asdict(seeds),
        "test_set_size": test_set_size,
        "device": str(device),
    }
    world_dev = world.to(device)
    model = init_model(lambda: Decoder(model_cfg), seeds.init, device)
    test_sets = make_test_sets(world_dev, seq, test_set_size, seeds.eval_data, device=device)
    batch_size = train_cfg.batch_size
    return Member(model, lambda gen: generate_sequences(world_dev, seq, batch_size, gen),
                  test_sets, model_cfg.n_labels, Path(out_dir), spec, seeds, save_batches,
                  train_cfg)


def stage2_member(world, spec, model_cfg, train_cfg: TrainConfig, out_dir: str | Path,
                  seed: int, stage1_state: dict | None, freeze_decoder: bool = True,
                  freeze_head: bool = False, test_set_size: int = 1000, device: str = "cpu",
                  meta: dict | None = None, joint_G2: int | None = None) -> Member:
    """The Stage-2 run `train.train_stage2` would train with the same arguments."""
    from mmicl.data.multimodal import (
        generate_joint, generate_multimodal, make_multimodal_test_sets, save_multimodal_batches,
    )
    from mmicl.models.multimodal import MultimodalDecoder

    seeds = RunSeeds.from_run_seed(seed)
    spec_dict = {
        "meta": meta or {},
        "world": {"seed": world.seed, "K1": world.m1.K, "L1": world.m1.L, "D1": world.m1.D,
                  "K2": world.K2, "L2": world.L2, "D2": world.D2},
        "sequences": asdict(spec),
        "model": {"decoder": asdict(model_cfg.decoder), "m2_dim": model_cfg.m2_dim,
                  "projector": model_cfg.projector},
        "init": "stage1" if stage1_state is not None else "scratch (early fusion)",
        "freeze_decoder": freeze_decoder,
        "freeze_head": freeze_head,
        "joint_G2": joint_G2,
        "train": asdict(train_cfg),
        "seeds": asdict(seeds),
        "test_set_size": test_set_size,
        "device": str(device),
    }
    model = init_model(lambda: MultimodalDecoder(model_cfg), seeds.init, device)
    if stage1_state is not None:
        model.decoder.load_state_dict(stage1_state)
        if freeze_decoder:
            model.freeze_decoder(include_head=freeze_head)
    world_dev = world.to(device)
    test_sets = make_multimodal_test_sets(world_dev, spec, test_set_size, seeds.eval_data,
                                          device=device, G2=joint_G2)
    S = train_cfg.batch_size
    if joint_G2 is None:
        sample = lambda gen: generate_multimodal(world_dev, spec, S, gen)  # noqa: E731
    else:
        sample = lambda gen: generate_joint(world_dev, joint_G2, spec, S, gen)  # noqa: E731
    modulus = world.L2 if joint_G2 is None else world.m1.L
    return Member(model, sample, test_sets, modulus, Path(out_dir), spec_dict, seeds,
                  save_multimodal_batches, train_cfg)
