"""Worlds: reference draw order, label map, multimodal sharing, and Parquet persistence (§1.1, §10)."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from mmicl.data.worlds import (
    MultimodalWorld,
    World,
    load_world,
    make_multimodal_world,
    make_world,
    save_world,
)


def reference_draws(seed, *shapes):
    """The reference's global-RNG draws, written out directly in NumPy."""
    rng = np.random.RandomState(seed)
    return [(rng.standard_normal(shape) / np.sqrt(shape[1])).astype(np.float32) for shape in shapes]


def test_world_matches_reference_draw_order():
    labels, classes = reference_draws(7, (4, 16), (12, 16))
    world = make_world(seed=7, K=12, L=4, D=16)
    assert world.class_means.dtype == torch.float32
    assert np.array_equal(world.label_vectors.numpy(), labels)
    assert np.array_equal(world.class_means.numpy(), classes)


def test_class_labels_are_index_mod_L():
    world = make_world(seed=0, K=12, L=4, D=8)
    assert world.class_labels.dtype == torch.long
    assert world.class_labels.tolist() == [k % 4 for k in range(12)]


def test_K_must_be_multiple_of_L():
    with pytest.raises(ValueError, match=r"K=100 must be a multiple of L=32 \(every label owns K/L classes\)"):
        make_world(seed=0, K=100, L=32, D=8)


def test_non_positive_dimension_is_named():
    with pytest.raises(ValueError, match="D=0"):
        make_world(seed=0, K=8, L=4, D=0)


def test_different_seeds_give_different_worlds():
    a, b = make_world(0, 8, 4, 8), make_world(1, 8, 4, 8)
    assert not a.equals(b)
    assert a.equals(make_world(0, 8, 4, 8))


@pytest.fixture
def mm_world():
    return make_multimodal_world(seed=3, K1=16, L1=8, D1=12, K2=12, L2=4, D2=6)


def test_multimodal_m1_equals_unimodal_world(mm_world):
    assert mm_world.m1.equals(make_world(seed=3, K=16, L=8, D=12))


def test_multimodal_m2_draws_follow_m1(mm_world):
    *_, m2 = reference_draws(3, (8, 12), (16, 12), (12, 6))
    assert np.array_equal(mm_world.m2_class_means.numpy(), m2)


def test_m2_labels_are_prefix_of_m1_vocabulary(mm_world):
    assert torch.equal(mm_world.m2_label_vectors, mm_world.m1.label_vectors[:4])
    assert mm_world.m2_class_labels.tolist() == [k % 4 for k in range(12)]


def test_m2_to_m1_maps_to_same_label_classes(mm_world):
    mapping = mm_world.m2_to_m1
    assert mapping.shape == (12, 16 // 8) and mapping.dtype == torch.long
    m1_labels = mm_world.m1.class_labels[mapping]
    assert torch.equal(m1_labels, mm_world.m2_class_labels[:, None].expand_as(mapping))
    assert (mapping.diff(dim=1) > 0).all()
    # Every M1 class with that label is listed, not just some of them.
    for k2 in range(12):
        expected = [k1 for k1 in range(16) if k1 % 8 == k2 % 4]
        assert mapping[k2].tolist() == expected


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(K1=15, L1=8, K2=12, L2=4), "K1=15 must be a multiple of L1=8"),
        (dict(K1=16, L1=8, K2=10, L2=4), "K2=10 must be a multiple of L2=4"),
        (dict(K1=16, L1=4, K2=16, L2=8), "L2=8 must be <= L1=4"),
    ],
)
def test_multimodal_validation_names_keys(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_multimodal_world(seed=0, D1=4, D2=4, **kwargs)


@pytest.mark.parametrize("kind", ["unimodal", "multimodal"])
def test_save_load_round_trip_is_bitwise(tmp_path, mm_world, kind):
    world = mm_world if kind == "multimodal" else make_world(5, 32, 8, 16)
    path = tmp_path / "worlds" / "seed=5.parquet"
    save_world(world, path)
    loaded = load_world(path)
    assert type(loaded) is type(world)
    assert loaded.equals(world)
    assert list(path.parent.iterdir()) == [path]  # no leftover .tmp


def test_saved_rows_follow_schema(tmp_path, mm_world):
    path = tmp_path / "w.parquet"
    save_world(mm_world, path)
    table = pq.read_table(path)
    assert table.schema.field("vector").type == pa.list_(pa.float32())
    counts = table.group_by(["modality", "kind"]).aggregate([("index", "count")]).to_pylist()
    assert {(r["modality"], r["kind"]): r["index_count"] for r in counts} == {
        ("m1", "label"): 8, ("m1", "class"): 16, ("m2", "class"): 12,
    }


def test_truncated_file_raises_value_error_naming_path(tmp_path):
    path = tmp_path / "w.parquet"
    save_world(make_world(0, 32, 8, 16), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_world(path)


def test_foreign_parquet_raises_value_error(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), path)
    with pytest.raises(ValueError, match="other.parquet"):
        load_world(path)


def test_missing_rows_are_detected(tmp_path):
    path = tmp_path / "w.parquet"
    save_world(make_world(0, 32, 8, 16), path)
    table = pq.read_table(path)
    pq.write_table(table.slice(0, table.num_rows - 1), path)  # keeps the metadata, drops a class
    with pytest.raises(ValueError, match="m1/class"):
        load_world(path)


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "w.parquet"
    old = make_world(0, 8, 4, 8)
    save_world(old, path)

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", explode)
    with pytest.raises(OSError):
        save_world(make_world(1, 8, 4, 8), path)
    assert load_world(path).equals(old)
    assert not (tmp_path / "w.parquet.tmp").exists()


def test_world_rejects_wrong_tensor_shape():
    with pytest.raises(ValueError, match="class_means"):
        World(0, 8, 4, 3, torch.zeros(8, 2), torch.zeros(4, 3))
    assert isinstance(make_multimodal_world(0, 8, 4, 4, 4, 4, 4), MultimodalWorld)
