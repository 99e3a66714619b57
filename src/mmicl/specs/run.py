"""The identity of one trained run, typed and torch-free, with one JSON codec.

A `RunSpec` is everything that decides a run's numbers: its stage, its parameters (Stage 1: the
decoder and the unimodal data; Stage 2: the Stage-1 parameters of the decoder it starts from plus
its own), how it is trained and evaluated, and its seed. The workflow plans RunSpecs
(`mmicl.plan`), ships them to training jobs as JSON, and every run writes its spec to
``config.json``, from which analyses rebuild the run (`mmicl.analysis.runs`).

Worlds are addressed by a `WorldKey`: the seed and the shape of the mixture (M1, and M2 for a
multimodal world, whose M1 half is the unimodal world of the same seed and M1 shape).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mmicl.specs.train import EvalConfig, TrainConfig, from_mapping

STAGES = (1, 2)


def derive_seed(seed: int, purpose: str) -> int:
    """Independent seeds for init / training data / evaluation data from one run seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


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


@dataclass(frozen=True)
class WorldKey:
    """A world: M1 (K1 classes, L1 labels, dimension D1) and, if multimodal, M2 (K2, L2, D2)."""

    seed: int
    K1: int
    L1: int
    D1: int
    K2: int | None = None
    L2: int | None = None
    D2: int | None = None

    def __post_init__(self):
        m2 = (self.K2, self.L2, self.D2)
        if any(v is None for v in m2) and any(v is not None for v in m2):
            raise ValueError(f"WorldKey: K2, L2, D2 are given together, got {m2}")

    @property
    def multimodal(self) -> bool:
        return self.K2 is not None

    @property
    def m1(self) -> "WorldKey":
        """The unimodal world this one extends (itself if unimodal)."""
        return WorldKey(self.seed, self.K1, self.L1, self.D1)


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One run. `run` is the readable id of the run's own parameters (mmicl.plan.runs);
    Stage-2 runs also carry `stage1_run`, the id of the Stage-1 run whose decoder they start
    from (for early fusion: whose architecture they train from scratch)."""

    stage: int
    seed: int
    run: str
    params1: dict  # Stage-1 parameters, every key of the tier's `stage1` section
    train: TrainConfig
    eval: EvalConfig
    params2: dict | None = None  # Stage-2 parameters, every key of `stage2` (Stage 2 only)
    stage1_run: str | None = None
    tier: str = ""
    device: str = "cpu"

    def __post_init__(self):
        if self.stage not in STAGES:
            raise ValueError(f"RunSpec.stage={self.stage!r}; expected 1 or 2")
        if (self.stage == 2) != (self.params2 is not None and self.stage1_run is not None):
            raise ValueError("a Stage-2 RunSpec has params2 and stage1_run; a Stage-1 one has "
                             f"neither (stage={self.stage}, run={self.run!r})")

    @property
    def key(self) -> tuple:
        """What makes two specs of one tier the same run (and one output folder)."""
        return (self.stage, self.stage1_run, self.run, self.seed)

    @property
    def early_fusion(self) -> bool:
        return self.stage == 2 and bool(self.params2["early_fusion"])

    @property
    def seeds(self) -> RunSeeds:
        return RunSeeds.from_run_seed(self.seed)

    def __eq__(self, other) -> bool:
        return isinstance(other, RunSpec) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        where = f"{self.stage1_run}/{self.run}" if self.stage == 2 else self.run
        return f"RunSpec(stage={self.stage}, {where}, seed={self.seed})"

    # --- the JSON codec ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "seed": self.seed, "run": self.run,
                "stage1_run": self.stage1_run, "params1": dict(self.params1),
                "params2": None if self.params2 is None else dict(self.params2),
                "train": asdict(self.train), "eval": asdict(self.eval), "tier": self.tier,
                "device": self.device}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict, where: str = "run spec") -> "RunSpec":
        try:
            return cls(stage=data["stage"], seed=int(data["seed"]), run=data["run"],
                       params1=dict(data["params1"]),
                       train=from_mapping(TrainConfig, data["train"], f"{where}: train"),
                       eval=from_mapping(EvalConfig, data["eval"], f"{where}: eval"),
                       params2=None if data.get("params2") is None else dict(data["params2"]),
                       stage1_run=data.get("stage1_run"), tier=data.get("tier", ""),
                       device=data.get("device", "cpu"))
        except KeyError as exc:
            raise ValueError(f"{where}: missing key {exc.args[0]!r}") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: malformed ({exc})") from None

    @classmethod
    def from_json(cls, text: str, where: str = "run spec") -> "RunSpec":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{where}: not JSON ({exc})") from None
        return cls.from_dict(data, where)

    def fingerprint(self) -> str:
        """Hash of everything that decides the run's numbers (not where it is stored)."""
        data = self.to_dict()
        del data["tier"]
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def read_spec(run_dir: str | Path) -> RunSpec:
    """The spec a run wrote beside its outputs (`<run_dir>/config.json`), checked."""
    from mmicl import io

    path = Path(run_dir) / "config.json"
    try:
        data = io.read_json(path)["spec"]
    except (FileNotFoundError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: missing or unreadable run config ({exc!r})") from None
    return RunSpec.from_dict(data, str(path))
