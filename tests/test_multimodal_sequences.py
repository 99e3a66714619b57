"""Invariants of the multimodal triplet generator (protocol §1.5, §1.7, §9.9-9.10)."""

import pytest
import torch

from mmicl.data.multimodal import (
    MultimodalSpec, generate_multimodal, load_multimodal_batches, make_multimodal_test_sets,
    save_multimodal_batches,
)
from mmicl.data.sequences import expected_target
from mmicl.data.worlds import make_multimodal_world

K1, L1, D1, K2, L2, D2, N = 512, 32, 16, 64, 32, 8, 8


@pytest.fixture(scope="module")
def world():
    return make_multimodal_world(0, K1, L1, D1, K2, L2, D2)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_layout_slots_labels_and_items(world):
    b = generate_multimodal(world, MultimodalSpec(eps1=0.0, eps2=0.0), 64, gen())
    assert b.inputs.shape == (64, 3 * N + 2, D1) and b.m2_inputs.shape == (64, N + 1, D2)
    assert b.inputs[:, 1::3].abs().max() == 0                       # M2 slots left empty
    assert torch.equal(b.inputs[:, 2 : 3 * N : 3], world.m2_label_vectors[b.seq_labels[:, :N]])
    assert torch.allclose(b.inputs[:, 0 : 3 * N : 3], world.m1.class_means[b.m1_classes[:, :N]])
    assert torch.allclose(b.inputs[:, 3 * N], world.m1.class_means[b.m1_classes[:, N]])
    assert torch.allclose(b.m2_inputs, world.m2_class_means[b.m2_classes])
    assert torch.equal(b.targets, b.seq_labels[:, N]) and torch.equal(b.seq_labels, b.m2_classes % L2)


def test_bursty_pairs_share_labels_repeat_b_times_and_contain_the_query(world):
    b = generate_multimodal(world, MultimodalSpec(B=4), 200, gen(1))
    assert torch.equal(b.m1_classes % L1, b.m2_classes % L2)         # label-consistent partners
    pairs = b.m1_classes * (K2 + 1000) + b.m2_classes
    for row in pairs:
        ctx, q = row[:N], row[N]
        assert (ctx == q).any()
        _, counts = torch.unique(ctx, return_counts=True)
        assert (counts % 4 == 0).all()


def test_non_bursty_pairs_m1_independently_of_the_label(world):
    b = generate_multimodal(world, MultimodalSpec(B=0), 2000, gen(2))
    assert not b.is_bursty.any()
    agree = (b.m1_classes % L1 == b.seq_labels).float().mean().item()
    assert agree < 0.1                                                # ~1/32, the authors' §9.9


def test_novel_sequences_are_bursty_and_use_one_novel_m2_class_per_label(world):
    spec = MultimodalSpec(p_bursty=0.0, p_novel=1.0)
    b = generate_multimodal(world, spec, 300, gen(3))
    assert b.is_novel.all() and b.is_bursty.all()
    assert (b.m2_classes >= K2).all() and (b.m1_classes >= K1).all()
    assert set((b.m2_classes - K2).unique().tolist()) <= set(range(32))
    assert torch.equal((b.m1_classes - K1) % L1, b.seq_labels)


@pytest.mark.parametrize("K2_, expected", [(256, 32), (2048, 32), (4096, 64), (8192, 128)])
def test_novel_m2_count_follows_the_reference(K2_, expected):
    assert MultimodalSpec().novel_m2_count(8192, K2_, 32) == expected


def test_flip_only_in_distribution_context_labels(world):
    spec = MultimodalSpec(flip_labels=True, p_novel=0.5)
    b = generate_multimodal(world, spec, 200, gen(4))
    shift = (~b.is_novel).long()[:, None]
    expected = world.m2_label_vectors[(b.seq_labels[:, :N] + shift) % L2]
    assert torch.equal(b.inputs[:, 2 : 3 * N : 3], expected)
    assert torch.equal(b.targets, b.m2_classes[:, N] % L2)           # targets stay true


def test_zipf_alpha2_shapes_m2_frequencies(world):
    b = generate_multimodal(world, MultimodalSpec(B=0, alpha2=1.0), 4000, gen(5))
    counts = torch.bincount(b.m2_classes.flatten(), minlength=K2).float()
    p = 1 / torch.arange(1, K2 + 1).float()
    expected = p / p.sum() * counts.sum()
    assert ((counts[:8] - expected[:8]).abs() / expected[:8]).max() < 0.1


def test_determinism(world):
    a = generate_multimodal(world, MultimodalSpec(), 16, gen(7))
    b = generate_multimodal(world, MultimodalSpec(), 16, gen(7))
    c = generate_multimodal(world, MultimodalSpec(), 16, gen(8))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.m2_inputs, b.m2_inputs)
    assert not torch.equal(a.inputs, c.inputs)


def test_test_sets_and_round_trip(world, tmp_path):
    sets = make_multimodal_test_sets(world, MultimodalSpec(), 64, seed=3)
    assert sets["IC"].is_novel.all() and sets["IC"].is_bursty.all()
    assert not sets["IW"].is_bursty.any() and not sets["IW"].is_novel.any()
    ic2 = sets["IC2"]
    assert torch.equal(ic2.inputs[:, 2 : 3 * N : 3],
                       world.m2_label_vectors[(ic2.seq_labels[:, :N] + 1) % L2])
    assert torch.equal(expected_target(ic2, "IC2", L2), (ic2.targets + 1) % L2)
    save_multimodal_batches(sets, tmp_path / "t.pt")
    back = load_multimodal_batches(tmp_path / "t.pt")
    assert all(torch.equal(back["IC"].m2_inputs, sets["IC"].m2_inputs) for _ in [0])
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="bad.pt"):
        load_multimodal_batches(tmp_path / "bad.pt")


def test_bad_spec_names_the_field():
    with pytest.raises(ValueError, match="eps2"):
        MultimodalSpec(eps2=-1.0)
    with pytest.raises(ValueError, match="eps1=-1"):
        MultimodalSpec(eps1=-1.0)
    with pytest.raises(ValueError, match="alpha1"):
        MultimodalSpec(alpha1=-0.5)
    with pytest.raises(ValueError, match="B=3"):
        MultimodalSpec(B=3)
    with pytest.raises(ValueError, match="N=30"):
        MultimodalSpec(N=30, B=2)


def test_joint_labels_need_both_modalities(world):
    from mmicl.data.multimodal import generate_joint

    G2 = 4
    G1 = L1 // G2
    b = generate_joint(world, G2, MultimodalSpec(eps1=0.0, eps2=0.0), 300, gen(9))
    assert torch.equal(b.seq_labels, b.m1_classes % G1 * G2 + b.m2_classes % G2)
    assert torch.equal(b.inputs[:, 2 : 3 * N : 3], world.m1.label_vectors[b.seq_labels[:, :N]])
    # pairs are tiled B times and the query pair is in the context
    pairs = b.m1_classes * (K2 + 1000) + b.m2_classes
    assert all((row[:N] == row[N]).any() for row in pairs)
    # M1 and M2 classes of a pair are independent: M1 group does not predict M2 group
    agree = (b.m1_classes % G2 == b.m2_classes % G2).float().mean().item()
    assert agree < 0.5


def test_joint_flip_shifts_context_tokens_only_the_double_shift_fix(world):
    from mmicl.data.multimodal import generate_joint

    b = generate_joint(world, 4, MultimodalSpec(flip_labels=True), 100, gen(10))
    assert torch.equal(b.inputs[:, 2 : 3 * N : 3],
                       world.m1.label_vectors[(b.seq_labels[:, :N] + 1) % L1])
    assert torch.equal(b.targets, b.seq_labels[:, N])            # true label, shifted once by eval
    assert torch.equal(expected_target(b, "IC2", L1), (b.targets + 1) % L1)


def test_joint_novel_groups_and_bad_G2(world):
    from mmicl.data.multimodal import generate_joint

    b = generate_joint(world, 4, MultimodalSpec(p_novel=1.0), 200, gen(11))
    assert (b.m1_classes >= K1).all() and (b.m2_classes >= K2).all()
    assert torch.equal(b.seq_labels, (b.m1_classes - K1) % 8 * 4 + (b.m2_classes - K2) % 4)
    with pytest.raises(ValueError, match="G2=5"):
        generate_joint(world, 5, MultimodalSpec(), 4, gen())
