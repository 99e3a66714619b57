"""Unimodal ICL sequences `x1 y1 ... xN yN xq` (protocol §1.2-1.4) and the fixed test sets (§1.7).

Everything is vectorised over the S sequences of a batch and driven by one explicit
torch.Generator. Every random tensor is drawn on every call, in a fixed order and with shapes that
depend only on (spec, S, world shape) -- never on drawn values or on the probabilities p_bursty,
p_novel -- so two runs that differ only in those probabilities (or in flip_labels) share their noise
and APE shifts, and a seed fully determines a batch.

Throughput (measured, CPU, 1 thread, S=128, N=8, K=8192, L=32, D=64, eps=0.1): ~1 ms per batch,
i.e. ~130,000 sequences/s (alpha=0 or 1; ~110,000/s with no_repeats) -- negligible next to a
training step. About a third of it is the Gaussian noise itself (novel prototypes + exemplars).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from mmicl.data.specs import SequenceSpec
from mmicl.data.worlds import World
from mmicl.io import atomic_write


@dataclass
class Batch:
    """S sequences. Class ids index `cat(world.class_means, novel_means)`: novel class j is K + j."""

    inputs: torch.Tensor  # (S, 2N+1, D) float32: items at 2i, label tokens at 2i+1, query at 2N
    targets: torch.Tensor  # (S,) long: TRUE query label (never shifted, also with flip_labels)
    seq_labels: torch.Tensor  # (S, N+1) long: true labels of the N context classes, then the query's
    query_classes: torch.Tensor  # (S,) long: query class id, -1 for novel sequences (reference)
    is_novel: torch.Tensor  # (S,) bool
    is_bursty: torch.Tensor  # (S,) bool; novel sequences are always bursty
    pos_offsets: torch.Tensor  # (S,) long APE shift in 0..2*n_max-2N, drawn even for RoPE runs
    context_classes: torch.Tensor  # (S, N) long: context class ids, novel class j stored as K + j

    def to(self, device: torch.device | str) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.targets.shape[0]


def zipf_probs(K: int, alpha: float, device: torch.device | str | None = None) -> torch.Tensor:
    """P[k] ∝ (k+1)^-alpha over class index k (float64 so the tail of K=8192 keeps its mass)."""
    ranks = torch.arange(1, K + 1, dtype=torch.float64, device=device)
    weights = ranks.pow(-alpha)
    return weights / weights.sum()


def exemplars(means: torch.Tensor, eps: float, generator: torch.Generator) -> torch.Tensor:
    """Noisy copies (mu + eps*eta/sqrt(D)) / sqrt(1+eps^2), eta ~ N(0, I): E||x||^2 = 1 for all eps."""
    D = means.shape[-1]
    eta = torch.randn(means.shape, generator=generator, device=means.device, dtype=means.dtype)
    return (means + eps * eta / math.sqrt(D)) / math.sqrt(1.0 + eps**2)


# ---------------------------------------------------------------------------------------------
# Class sampling. Each helper returns class ids; all draw a value-independent amount of randomness.


def _zipf_draws(probs: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    flat = torch.multinomial(probs, math.prod(shape), replacement=True, generator=generator)
    return flat.view(shape)


def _distinct_label_slots(
    S: int, slots: int, L: int, rows_per_label: int, generator: torch.Generator, device
) -> torch.Tensor:
    """no_repeats: `slots` distinct labels per row (random permutation prefix), a random class each."""
    labels = torch.rand(S, L, generator=generator, device=device).argsort(dim=1)[:, :slots]
    rows = torch.randint(0, rows_per_label, (S, slots), generator=generator, device=device)
    return rows * L + labels


def _bursty_context(slot_classes: torch.Tensor, B: int, generator: torch.Generator) -> torch.Tensor:
    """Tile the N/B slot classes B times and shuffle each row independently (argsort of noise)."""
    tiled = slot_classes.repeat(1, B)
    order = torch.rand(tiled.shape, generator=generator, device=tiled.device).argsort(dim=1)
    return tiled.gather(1, order)


def _query_from_context(context: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A uniformly random context position's class, so the query class occurs >= B times."""
    S, N = context.shape
    position = torch.randint(0, N, (S, 1), generator=generator, device=context.device)
    return context.gather(1, position).squeeze(1)


def _known_bursty(world: World, spec: SequenceSpec, zipf_slots: torch.Tensor, generator):
    """Bursty in-distribution contexts from Zipf slot draws (or distinct labels for no_repeats)."""
    S = zipf_slots.shape[0]
    slots = zipf_slots
    if spec.no_repeats:  # the Zipf slot draws are then unused, but drawn so the stream layout is fixed
        slots = _distinct_label_slots(S, spec.n_slots, world.L, world.K // world.L, generator, slots.device)
    context = _bursty_context(slots, spec.burst, generator)
    return context, _query_from_context(context, generator)


def _novel_bursty(world: World, spec: SequenceSpec, S: int, generator):
    """Bursty contexts over the fresh novel classes, ids offset by K; sampled uniformly."""
    device = world.class_means.device
    if spec.no_repeats:
        slots = _distinct_label_slots(S, spec.n_slots, world.L, spec.n_novel // world.L, generator, device)
    else:
        slots = torch.randint(0, spec.n_novel, (S, spec.n_slots), generator=generator, device=device)
    context = _bursty_context(slots + world.K, spec.burst, generator)
    return context, _query_from_context(context, generator)


def _check_call(world: World, spec: SequenceSpec, S: int, generator: torch.Generator) -> None:
    if not isinstance(S, int) or S <= 0:
        raise ValueError(f"S={S!r} must be a positive integer")
    if spec.n_novel % world.L != 0:
        raise ValueError(f"n_novel={spec.n_novel} must be a multiple of L={world.L} (novel labels are k mod L)")
    if spec.no_repeats and spec.n_slots > world.L:
        raise ValueError(f"no_repeats needs N/B={spec.n_slots} distinct labels but L={world.L}")
    device = world.class_means.device
    if generator.device.type != device.type:
        raise ValueError(f"generator is on {generator.device} but the world is on {device}")


# ---------------------------------------------------------------------------------------------


def generate_sequences(world: World, spec: SequenceSpec, S: int, generator: torch.Generator) -> Batch:
    """One batch of S sequences following protocol §1.4, on the world's device."""
    _check_call(world, spec, S, generator)
    means, L, N, D = world.class_means, world.L, spec.N, world.D
    device = means.device
    novel_means = torch.randn(spec.n_novel, D, generator=generator, device=device) / math.sqrt(D)

    # Both branches and the non-bursty override are drawn for every sequence, then selected.
    # One multinomial call (bursty slots | i.i.d. context | i.i.d. query) builds the CDF once.
    zipf = _zipf_draws(zipf_probs(world.K, spec.alpha, device), (S, spec.n_slots + N + 1), generator)
    known_context, known_query = _known_bursty(world, spec, zipf[:, : spec.n_slots], generator)
    novel_context, novel_query = _novel_bursty(world, spec, S, generator)
    iid = zipf[:, spec.n_slots :]
    bursty = torch.rand(S, generator=generator, device=device) < spec.bursty_prob
    novel = torch.rand(S, generator=generator, device=device) < spec.p_novel

    known_context = torch.where(bursty[:, None], known_context, iid[:, :N])
    known_query = torch.where(bursty, known_query, iid[:, N])
    context = torch.where(novel[:, None], novel_context, known_context)
    query = torch.where(novel, novel_query, known_query)

    classes = torch.cat([context, query[:, None]], dim=1)  # (S, N+1)
    # K is a multiple of L, so novel id K + j keeps the novel label j mod L.
    labels = classes % L
    items = exemplars(_prototypes(means, novel_means, classes), spec.eps, generator)
    shown = (labels[:, :N] + (spec.flip_labels & ~novel).long()[:, None]) % L
    pos_offsets = torch.randint(0, spec.max_offset + 1, (S,), generator=generator, device=device)

    return Batch(
        inputs=_interleave(items, world.label_vectors[shown]),
        targets=labels[:, N],
        seq_labels=labels,
        query_classes=torch.where(novel, torch.full_like(query, -1), query),
        is_novel=novel,
        is_bursty=bursty | novel,
        pos_offsets=pos_offsets,
        context_classes=context,
    )


def _prototypes(means: torch.Tensor, novel_means: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Look up ids in cat(means, novel_means) without copying the (K, D) table every batch."""
    K = means.shape[0]
    is_novel = (classes >= K)[..., None]
    return torch.where(is_novel, novel_means[(classes - K).clamp(min=0)], means[classes.clamp(max=K - 1)])


def _interleave(items: torch.Tensor, label_tokens: torch.Tensor) -> torch.Tensor:
    """(S, N+1, D) items and (S, N, D) label tokens -> x1 y1 ... xN yN xq, shape (S, 2N+1, D)."""
    S, N, D = label_tokens.shape
    pairs = torch.stack([items[:, :N], label_tokens], dim=2).reshape(S, 2 * N, D)
    return torch.cat([pairs, items[:, N:]], dim=1)


# ---------------------------------------------------------------------------------------------
# Fixed evaluation sets (§1.7): built once per run from their own seed, stored beside the run.

TEST_SET_NAMES = ("Test", "IC", "IC2", "IW")


def test_set_specs(train: SequenceSpec) -> dict[str, SequenceSpec]:
    """Test = training mix; IC = novel-class ICL; IC2 = swapped-label ICL; IW = in-weights (i.i.d.)."""
    return {
        "Test": train,
        "IC": replace(train, p_bursty=1.0, p_novel=1.0, flip_labels=False),
        "IC2": replace(train, p_bursty=1.0, p_novel=0.0, flip_labels=True),
        "IW": replace(train, B=0, p_bursty=0.0, p_novel=0.0, flip_labels=False),
    }


# Not a pytest test despite the name.
test_set_specs.__test__ = False


def make_test_sets(
    world: World, train: SequenceSpec, S: int, seed: int, device: torch.device | str = "cpu"
) -> dict[str, Batch]:
    """One generator seeded once, sets drawn in TEST_SET_NAMES order (so each set depends on seed only)."""
    world = world.to(device)
    generator = torch.Generator(device).manual_seed(seed)
    specs = test_set_specs(train)
    return {name: generate_sequences(world, specs[name], S, generator) for name in TEST_SET_NAMES}


def expected_target(batch: Batch, name: str, L: int) -> torch.Tensor:
    """The label a correct model outputs: for IC2 the label the (flipped) context shows."""
    if name == "IC2":
        return (batch.targets + 1) % L
    return batch.targets


_BATCHES_FORMAT = "mmicl-batches-v1"


def save_batches(batches: dict[str, Batch], path: str | os.PathLike) -> None:
    """torch.save of plain tensors (weights_only-loadable), written atomically."""
    payload = {
        "format": _BATCHES_FORMAT,
        "sets": {
            name: {f.name: getattr(batch, f.name).detach().cpu() for f in fields(batch)}
            for name, batch in batches.items()
        },
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_batches(path: str | os.PathLike, device: torch.device | str = "cpu", cls=None) -> dict:
    """Inverse of save_batches; `cls` is the batch dataclass (default: the unimodal Batch)."""
    cls = cls or Batch
    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != _BATCHES_FORMAT:
            raise ValueError(f"not a {_BATCHES_FORMAT} file")
        expected = {f.name for f in fields(cls)}
        for name, tensors in payload["sets"].items():
            if set(tensors) != expected:
                raise ValueError(f"set {name!r} has fields {sorted(tensors)}, expected {sorted(expected)}")
        return {name: cls(**tensors) for name, tensors in payload["sets"].items()}
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises RuntimeError/EOFError/UnpicklingError on torn files
        raise ValueError(f"cannot load test sets from {path}: {error}") from error
