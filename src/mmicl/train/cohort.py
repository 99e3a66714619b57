"""A workflow training job: the members of one cohort, trained one after the other or stacked.

A member whose folder already holds its complete outputs for the same spec and training code
(`outputs.is_trained`) is not retrained (reuse=True): its files are only touched, so a cohort
rerun because one member changed retrains that member alone.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mmicl import paths
from mmicl.plan.cohorts import resolve_backend
from mmicl.specs import RunSpec
from mmicl.train.loop import fit
from mmicl.train.members import RunInputs, build_member
from mmicl.train.outputs import is_trained, remove_outputs, touch_outputs


@dataclass
class Entry:
    """One member of a cohort job, as the workflow ships it (JSON)."""

    spec: RunSpec
    out_dir: str
    inputs: RunInputs

    def to_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "out_dir": self.out_dir,
                "inputs": vars(self.inputs)}

    @classmethod
    def from_dict(cls, data: dict, where: str = "entry") -> "Entry":
        missing = [k for k in ("spec", "out_dir", "inputs") if k not in data]
        if missing:
            raise ValueError(f"{where}: lacks {', '.join(missing)}")
        try:
            inputs = RunInputs(**data["inputs"])
        except TypeError as exc:
            raise ValueError(f"{where}: inputs: {exc}") from None
        return cls(RunSpec.from_dict(data["spec"], f"{where}: spec"), data["out_dir"], inputs)


def same_encoder(out_dir: Path, inputs: RunInputs) -> bool:
    """A run with a pretrained M2 encoder was trained from the encoder file it is given now (its
    path names the pretraining run and settings; docs/images.md); other runs always are."""
    from mmicl import io

    recorded = (io.read_json(out_dir / "config.json").get("m2_encoder") or {}).get("checkpoint")
    return recorded == inputs.encoder_model


def train_cohort(entries: Sequence[Entry], backend: str = "auto", device: str | None = None,
                 progress: bool = True, checkpoint: str | Path | None = None,
                 reuse: bool = True, accept_code: bool = False) -> dict[str, list[Path]]:
    """Train the stale members of one cohort; returns the out_dirs trained and reused.

    sequential: each member is built and trained alone (its own resume.pt); vmap: the stale
    members as one stacked model, resumable from `checkpoint`. accept_code: a member trained by
    other training code counts as up to date (the workflow's on_code_change=keep)."""
    if not entries:
        raise ValueError("a cohort needs at least one member")
    devices = {e.spec.device for e in entries}
    if len(devices) > 1:
        raise ValueError(f"a cohort runs on one device, got {sorted(devices)}")
    device = device or devices.pop()
    backend = resolve_backend(backend, device)
    done: dict[str, list[Path]] = {"trained": [], "reused": []}

    def fresh(entry: Entry) -> bool:
        out_dir = Path(entry.out_dir)
        if (reuse and is_trained(out_dir, entry.spec, accept_code)
                and same_encoder(out_dir, entry.inputs)):
            touch_outputs(out_dir)
            done["reused"].append(out_dir)
            print(f"{out_dir}: up to date (same spec and training code), not retrained",
                  file=sys.stderr)
            return True
        remove_outputs(out_dir)
        return False

    stale = [e for e in entries if not fresh(e)]
    if backend == "sequential":
        for entry in stale:
            member = build_member(entry.spec, entry.out_dir, entry.inputs, device)
            fit([member], device, checkpoint=paths.resume_checkpoint(entry.out_dir),
                progress=progress)
            done["trained"].append(member.out_dir)
    elif stale:
        members = [build_member(e.spec, e.out_dir, e.inputs, device) for e in stale]
        fit(members, device, stacked=True, checkpoint=checkpoint, progress=progress)
        done["trained"] += [m.out_dir for m in members]
    return done
