"""What a trained run leaves in its folder, written in one place, and how it is recognised.

Files (`paths.RUN_FILES`): model.pt (final state dict), snapshots.pt (weights through training
for the indicator step), testsets.pt (the fixed evaluation sets), curve.parquet and final.parquet
(accuracy and loss per evaluation), attention.parquet (mean attention on IC sequences) and
config.json, written last: its presence, with this spec's fingerprint and this training code's
version, marks a complete run that a cohort rerun may keep (`is_trained`).
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from mmicl import io, paths
from mmicl.fingerprint import code_version
from mmicl.specs import RunSpec, resolve


class Snapshots:
    """Weights at the iterations of `TrainConfig.snapshot_iterations()`.

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


def run_config(spec: RunSpec, model: torch.nn.Module, **extra) -> dict:
    """config.json: the spec (its JSON codec), what it resolves to, fingerprints, versions."""
    resolved = resolve(spec)
    return {
        "spec": spec.to_dict(),
        "resolved": {"world": asdict(resolved.world), "sequences": asdict(resolved.sequences),
                     "model": asdict(resolved.model), "seeds": asdict(spec.seeds)},
        "fingerprint": spec.fingerprint(),
        "code_version": code_version(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "command": sys.argv,
        **extra,
    }


def write_outputs(out_dir: Path, spec: RunSpec, model: torch.nn.Module, test_sets: dict,
                  save_test_sets, curve: pd.DataFrame, snapshots: Snapshots,
                  attention: pd.DataFrame, **extra) -> None:
    """Every run file, config.json last (each written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = curve[curve.iteration == curve.iteration.max()].copy()
    save_test_sets(test_sets, out_dir / "testsets.pt")
    io.save_torch(model.state_dict(), out_dir / "model.pt")
    io.save_torch(snapshots.to_dict(), out_dir / "snapshots.pt")
    io.write_parquet(curve, out_dir / "curve.parquet")
    io.write_parquet(final, out_dir / "final.parquet")
    io.write_parquet(attention, out_dir / "attention.parquet")
    io.write_json(run_config(spec, model, **extra), out_dir / "config.json")


def is_trained(out_dir: str | Path, spec: RunSpec, accept_code: bool = False) -> bool:
    """True iff `out_dir` holds every output of this spec, trained by the current training code
    (or any, with accept_code); config.json is written last, so it marks a complete run."""
    out_dir = Path(out_dir)
    if not all((out_dir / name).is_file() for name in paths.RUN_FILES):
        return False
    try:
        written = io.read_json(out_dir / "config.json")
    except ValueError:
        return False
    return (written.get("fingerprint") == spec.fingerprint()
            and (accept_code or written.get("code_version") == code_version()))


def touch_outputs(out_dir: Path) -> None:
    for name in paths.RUN_FILES:
        os.utime(out_dir / name)


def remove_outputs(out_dir: Path) -> None:
    """A run about to be (re)trained: old outputs go first, so a failure leaves none behind
    that could pass for the new run (its resume.pt, if any, is kept and resumed from)."""
    for name in (*paths.RUN_FILES, paths.INDICATORS_FILE):
        (out_dir / name).unlink(missing_ok=True)
