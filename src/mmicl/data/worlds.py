"""The "world": class prototypes and label vectors of the Gaussian-mixture task (protocol §1.1).

A world is drawn once per seed with the reference's NumPy draw order, so that a Stage-2 world with
(K1, L1, D1) = Stage-1's (K, L, D) and the same seed contains *exactly* the Stage-1 M1 prototypes.
The reference relied on this implicitly (§9.12); here the world is also an explicit, persisted
artifact (Parquet) that every stage loads instead of redrawing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from mmicl.io import atomic_write

# Parquet schema-metadata key holding the world spec; its absence marks a foreign file.
_META_KEY = b"mmicl_world"
_FORMAT_VERSION = 1


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """torch.equal treats -0.0 == 0.0 and NaN != NaN; compare the raw bits instead."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))


def _check_positive(**values: int) -> None:
    for key, value in values.items():
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{key}={value!r} must be a positive integer")


def _check_multiple(K_key: str, K: int, L_key: str, L: int) -> None:
    if K % L != 0:
        raise ValueError(
            f"{K_key}={K} must be a multiple of {L_key}={L} "
            f"(every label owns {K_key}/{L_key} classes)"
        )


def _check_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> None:
    if tuple(tensor.shape) != shape or tensor.dtype != torch.float32:
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}, "
            f"expected {shape} float32"
        )


@dataclass(frozen=True, eq=False)
class World:
    """Unimodal world; also the M1 half of a MultimodalWorld. Class k carries label k mod L."""

    seed: int
    K: int  # classes (prototypes)
    L: int  # labels; every label owns K/L classes
    D: int  # feature dimension
    class_means: torch.Tensor  # (K, D) float32 prototypes, entries ~ N(0, 1/D)
    label_vectors: torch.Tensor  # (L, D) float32 label tokens, entries ~ N(0, 1/D)

    def __post_init__(self) -> None:
        _check_positive(K=self.K, L=self.L, D=self.D)
        _check_multiple("K", self.K, "L", self.L)
        _check_shape("class_means", self.class_means, (self.K, self.D))
        _check_shape("label_vectors", self.label_vectors, (self.L, self.D))

    @property
    def class_labels(self) -> torch.Tensor:
        return torch.arange(self.K, device=self.class_means.device) % self.L

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, World)
            and (self.seed, self.K, self.L, self.D) == (other.seed, other.K, other.L, other.D)
            and _bitwise_equal(self.class_means, other.class_means)
            and _bitwise_equal(self.label_vectors, other.label_vectors)
        )

    def to(self, device: torch.device | str) -> World:
        return replace(
            self,
            class_means=self.class_means.to(device),
            label_vectors=self.label_vectors.to(device),
        )


def _gaussian_rows(rng: np.random.RandomState, rows: int, dim: int) -> torch.Tensor:
    """Rows with i.i.d. N(0, 1/dim) entries, drawn and scaled in float64 like the reference."""
    return torch.from_numpy((rng.standard_normal((rows, dim)) / np.sqrt(dim)).astype(np.float32))


def _draw_world(rng: np.random.RandomState, seed: int, K: int, L: int, D: int) -> World:
    # Labels first, then prototypes: the reference's order, which multimodal worlds share.
    label_vectors = _gaussian_rows(rng, L, D)
    class_means = _gaussian_rows(rng, K, D)
    return World(seed, K, L, D, class_means, label_vectors)


def make_world(seed: int, K: int, L: int, D: int) -> World:
    _check_positive(K=K, L=L, D=D)
    _check_multiple("K", K, "L", L)
    return _draw_world(np.random.RandomState(seed), seed, K, L, D)


@dataclass(frozen=True, eq=False)
class MultimodalWorld:
    """Two Gaussian mixtures sharing one label vocabulary: M2 labels are the first L2 M1 labels."""

    m1: World  # bitwise equal to make_world(seed, K1, L1, D1): same draws, same order
    K2: int  # M2 classes; class k2 carries label k2 mod L2
    L2: int  # M2 labels, a prefix of the M1 vocabulary (L2 <= L1)
    D2: int  # M2 feature dimension
    m2_class_means: torch.Tensor  # (K2, D2) float32, entries ~ N(0, 1/D2)

    def __post_init__(self) -> None:
        _check_positive(K2=self.K2, L2=self.L2, D2=self.D2)
        _check_multiple("K2", self.K2, "L2", self.L2)
        _check_subset_vocabulary(self.L2, self.m1.L)
        _check_shape("m2_class_means", self.m2_class_means, (self.K2, self.D2))

    @property
    def seed(self) -> int:
        return self.m1.seed

    @property
    def m2_label_vectors(self) -> torch.Tensor:
        return self.m1.label_vectors[: self.L2]

    @property
    def m2_class_labels(self) -> torch.Tensor:
        return torch.arange(self.K2, device=self.m2_class_means.device) % self.L2

    @property
    def m2_to_m1(self) -> torch.Tensor:
        """(K2, K1/L1) long: the M1 classes r*L1 + label2(k2), r ascending, for each M2 class k2."""
        rows = torch.arange(self.m1.K // self.m1.L, device=self.m2_class_means.device)
        return rows[None, :] * self.m1.L + self.m2_class_labels[:, None]

    def equals(self, other: object) -> bool:
        return (
            isinstance(other, MultimodalWorld)
            and self.m1.equals(other.m1)
            and (self.K2, self.L2, self.D2) == (other.K2, other.L2, other.D2)
            and _bitwise_equal(self.m2_class_means, other.m2_class_means)
        )

    def to(self, device: torch.device | str) -> MultimodalWorld:
        return replace(self, m1=self.m1.to(device), m2_class_means=self.m2_class_means.to(device))


def _check_subset_vocabulary(L2: int, L1: int) -> None:
    if L2 > L1:
        raise ValueError(f"L2={L2} must be <= L1={L1} (M2 labels are the first L2 M1 labels)")


def make_multimodal_world(
    seed: int, K1: int, L1: int, D1: int, K2: int, L2: int, D2: int
) -> MultimodalWorld:
    _check_positive(K1=K1, L1=L1, D1=D1, K2=K2, L2=L2, D2=D2)
    _check_multiple("K1", K1, "L1", L1)
    _check_multiple("K2", K2, "L2", L2)
    _check_subset_vocabulary(L2, L1)
    rng = np.random.RandomState(seed)
    m1 = _draw_world(rng, seed, K1, L1, D1)
    return MultimodalWorld(m1, K2, L2, D2, _gaussian_rows(rng, K2, D2))


# ---------------------------------------------------------------------------------------------
# Persistence: one Parquet file per world, spec in the schema metadata, one row per vector.


def _spec_of(world: World | MultimodalWorld) -> dict:
    if isinstance(world, MultimodalWorld):
        m1 = world.m1
        return dict(kind="multimodal", seed=m1.seed, K1=m1.K, L1=m1.L, D1=m1.D,
                    K2=world.K2, L2=world.L2, D2=world.D2, version=_FORMAT_VERSION)
    if isinstance(world, World):
        return dict(kind="unimodal", seed=world.seed, K=world.K, L=world.L, D=world.D,
                    version=_FORMAT_VERSION)
    raise TypeError(f"cannot save a {type(world).__name__}; expected World or MultimodalWorld")


def _vector_block(modality: str, kind: str, vectors: torch.Tensor, labels: torch.Tensor) -> pa.Table:
    n, dim = vectors.shape
    flat = pa.array(vectors.detach().cpu().numpy().reshape(-1), type=pa.float32())
    # Building the list column from offsets avoids a slow per-row Python conversion.
    vector = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32) * dim), flat)
    return pa.table({
        "modality": pa.array([modality] * n, type=pa.string()),
        "kind": pa.array([kind] * n, type=pa.string()),
        "index": pa.array(np.arange(n, dtype=np.int64)),
        "label": pa.array(labels.cpu().numpy().astype(np.int64)),
        "vector": vector,
    })


def _world_table(world: World | MultimodalWorld) -> pa.Table:
    m1 = world.m1 if isinstance(world, MultimodalWorld) else world
    blocks = [
        _vector_block("m1", "label", m1.label_vectors, torch.arange(m1.L)),
        _vector_block("m1", "class", m1.class_means, m1.class_labels),
    ]
    if isinstance(world, MultimodalWorld):
        # M2 label vectors are a prefix of M1's, so they are derived on load, not stored.
        blocks.append(_vector_block("m2", "class", world.m2_class_means, world.m2_class_labels))
    table = pa.concat_tables(blocks)
    return table.replace_schema_metadata({_META_KEY: json.dumps(_spec_of(world)).encode()})


def save_world(world: World | MultimodalWorld, path: str | os.PathLike) -> None:
    """Write atomically: a killed job never leaves a torn world behind."""
    table = _world_table(world)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _read_vectors(table: pa.Table, modality: str, kind: str, rows: int, dim: int) -> torch.Tensor:
    """Select one block of rows and check it is complete: indices 0..rows-1 in order, width dim."""
    mask = pc.and_(pc.equal(table["modality"], modality), pc.equal(table["kind"], kind))
    block = table.filter(mask)
    index = np.asarray(block.column("index").to_pylist(), dtype=np.int64)
    if not np.array_equal(index, np.arange(rows)):
        raise ValueError(f"{modality}/{kind}: expected indices 0..{rows - 1}, found {len(index)} rows")
    lists = block.column("vector").combine_chunks()
    values = np.asarray(lists.flatten(), dtype=np.float32)
    if values.size != rows * dim:
        raise ValueError(f"{modality}/{kind}: expected {rows}x{dim} values, found {values.size}")
    return torch.from_numpy(values.reshape(rows, dim).copy())


def _world_from_table(table: pa.Table, spec: dict) -> World | MultimodalWorld:
    if spec.get("version") != _FORMAT_VERSION:
        raise ValueError(f"format version {spec.get('version')!r}, expected {_FORMAT_VERSION}")
    if spec["kind"] == "unimodal":
        K, L, D = spec["K"], spec["L"], spec["D"]
        return World(spec["seed"], K, L, D,
                     _read_vectors(table, "m1", "class", K, D),
                     _read_vectors(table, "m1", "label", L, D))
    if spec["kind"] == "multimodal":
        K1, L1, D1 = spec["K1"], spec["L1"], spec["D1"]
        m1 = World(spec["seed"], K1, L1, D1,
                   _read_vectors(table, "m1", "class", K1, D1),
                   _read_vectors(table, "m1", "label", L1, D1))
        m2 = _read_vectors(table, "m2", "class", spec["K2"], spec["D2"])
        return MultimodalWorld(m1, spec["K2"], spec["L2"], spec["D2"], m2)
    raise ValueError(f"unknown world kind {spec['kind']!r}")


def load_world(path: str | os.PathLike) -> World | MultimodalWorld:
    """Load a world saved by save_world; any unreadable or foreign file raises ValueError."""
    path = Path(path)
    try:
        table = pq.read_table(path)
        metadata = table.schema.metadata or {}
        if _META_KEY not in metadata:
            raise ValueError("no mmicl world spec in the Parquet metadata (foreign file?)")
        return _world_from_table(table, json.loads(metadata[_META_KEY]))
    except FileNotFoundError:
        raise
    except Exception as error:  # pyarrow raises several types for torn or non-Parquet files
        raise ValueError(f"cannot load world from {path}: {error}") from error
