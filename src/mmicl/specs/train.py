"""How a run is trained and evaluated (torch-free: the workflow plans with these)."""

from __future__ import annotations

from dataclasses import dataclass, fields

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"  # sgd | adam | adamw; the paper: sgd
    lr: float = 1e-3
    weight_decay: float = 1e-6
    momentum: float = 0.0  # SGD only; the reference uses plain SGD
    batch_size: int = 128
    iterations: int = 2000
    eval_every: int = 100
    checkpoint_every: int = 500
    # weight snapshots for the indicator step: every `snapshot_every` steps, plus every
    # `snapshot_dense_every` steps up to `snapshot_dense_until` (0 = no dense window)
    snapshot_every: int = 100
    snapshot_dense_every: int = 0
    snapshot_dense_until: int = 0
    # train until the IC accuracy reaches this at a logged evaluation, or `iterations` (0 = off):
    # the decoders Stage 2 starts from stop once their ICL circuit has formed
    stop_at_ic: float = 0.0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r} is not supported; expected one of: "
                             f"{', '.join(OPTIMIZERS)}")
        for key in ("batch_size", "iterations", "eval_every", "checkpoint_every", "snapshot_every"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}={getattr(self, key)} must be a positive integer")
        for key in ("snapshot_dense_every", "snapshot_dense_until"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")
        if (self.snapshot_dense_every == 0) != (self.snapshot_dense_until == 0):
            raise ValueError("snapshot_dense_every and snapshot_dense_until are set together "
                             f"(got {self.snapshot_dense_every} and {self.snapshot_dense_until})")
        if not 0.0 <= self.stop_at_ic <= 1.0:
            raise ValueError(f"stop_at_ic={self.stop_at_ic} must lie in [0, 1] (0 = off)")
        for key in ("eval_every", "checkpoint_every", "snapshot_every"):
            if getattr(self, key) > self.iterations:
                raise ValueError(f"{key}={getattr(self, key)} exceeds "
                                 f"iterations={self.iterations}")

    def snapshot_iterations(self) -> list[int]:
        """Iterations whose weights are kept: 0, every snapshot_every, the dense window, the end."""
        its = {0, self.iterations, *range(0, self.iterations + 1, self.snapshot_every)}
        if self.snapshot_dense_every:
            its |= set(range(0, min(self.snapshot_dense_until, self.iterations) + 1,
                             self.snapshot_dense_every))
        return sorted(its)

    def eval_iterations(self) -> list[int]:
        """Iterations with a logged evaluation: 0, every eval_every and the end (the train loss
        and accuracy rows average the steps since the previous one of these)."""
        return sorted({0, self.iterations, *range(0, self.iterations + 1, self.eval_every)})

    def test_iterations(self) -> list[int]:
        """Iterations whose weights are evaluated on every test set: the logged evaluations and
        every snapshot (so the indicator step reads a snapshot's accuracies from the curve)."""
        return sorted(set(self.eval_iterations()) | set(self.snapshot_iterations()))


@dataclass(frozen=True)
class EvalConfig:
    test_set_size: int = 1000  # sequences per evaluation set (Test, IC, IC2, IW)
    attention_sequences: int = 256  # IC sequences averaged for the attention maps (Fig. 2d)
    indicator_split: str = "IC"  # test set the circuit indicators are computed on (§4)

    def __post_init__(self):
        for key in ("test_set_size", "attention_sequences"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{key}={value!r} must be a positive integer")


def from_mapping(cls, data, where: str):
    """cls(**data) with an error that names `where` and the unknown or bad key."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected "
                         f"some of: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
