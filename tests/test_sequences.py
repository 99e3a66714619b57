"""Sequences and fixed test sets: the reference semantics of protocol §1.2-1.4 and §1.7 (see §10)."""

import math
import re
from dataclasses import fields

import pytest
import torch

from mmicl.data.sequences import (
    TEST_SET_NAMES,
    Batch,
    SequenceSpec,
    exemplars,
    expected_target,
    generate_sequences,
    load_batches,
    make_test_sets,
    save_batches,
    test_set_specs,
    zipf_probs,
)
from mmicl.data.worlds import make_world

K, L, D = 64, 8, 32


@pytest.fixture(scope="module")
def world():
    return make_world(seed=0, K=K, L=L, D=D)


def items_of(batch):
    """(S, N+1, D): the N context items and the query item."""
    return torch.cat([batch.inputs[:, 0:-1:2], batch.inputs[:, -1:]], dim=1)


def class_counts(context, n_classes):
    return torch.zeros(context.shape[0], n_classes, dtype=torch.long).scatter_add_(
        1, context, torch.ones_like(context)
    )


# --- exemplar model (§1.2) ---------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.8])
def test_exemplar_norm_is_one_in_expectation(gen, eps):
    n, dim = 20000, 32
    means = torch.randn(n, dim, generator=gen) / math.sqrt(dim)
    x = exemplars(means, eps, gen)
    # ||x||^2 ~ chi2_dim / dim: sd sqrt(2/dim) per item.
    assert abs(x.pow(2).sum(1).mean().item() - 1.0) < 5 * math.sqrt(2 / dim / n)
    # The noise itself has E||eps*eta/sqrt(D)||^2 = eps^2 (pins the 1/sqrt(D) scale).
    noise = x * math.sqrt(1 + eps**2) - means
    assert abs(noise.pow(2).sum(1).mean().item() - eps**2) < 5 * eps**2 * math.sqrt(2 / dim / n) + 1e-6


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.8])
def test_sequence_items_have_unit_norm(gen, eps):
    big = make_world(seed=1, K=1024, L=32, D=64)
    batch = generate_sequences(big, SequenceSpec(eps=eps, p_bursty=0.5), 2000, gen)
    norms = items_of(batch).pow(2).sum(-1)
    # Dominated by which 1024 prototypes the world drew: sd of their mean norm is sqrt(2/(D*K)).
    tol = 5 * math.sqrt(2 / (64 * 1024) + 2 / 64 / norms.numel())
    assert abs(norms.mean().item() - 1.0) < tol


def test_zipf_probs():
    p = zipf_probs(4, 1.0)
    expected = torch.tensor([1, 1 / 2, 1 / 3, 1 / 4], dtype=torch.float64)
    assert torch.allclose(p, expected / expected.sum())
    assert torch.allclose(zipf_probs(5, 0.0), torch.full((5,), 0.2, dtype=torch.float64))


# --- layout and labels -------------------------------------------------------------------------


def test_shapes_and_dtypes(world, gen):
    S, N = 16, 8
    b = generate_sequences(world, SequenceSpec(N=N, p_novel=0.5), S, gen)
    assert b.inputs.shape == (S, 2 * N + 1, D) and b.inputs.dtype == torch.float32
    assert b.seq_labels.shape == (S, N + 1) and b.context_classes.shape == (S, N)
    for name in ("targets", "query_classes", "is_novel", "is_bursty", "pos_offsets"):
        assert getattr(b, name).shape == (S,), name
    assert b.targets.dtype == torch.long and b.is_novel.dtype == torch.bool
    assert len(b) == S


def test_label_tokens_are_noiseless_label_vectors(world, gen):
    b = generate_sequences(world, SequenceSpec(p_novel=0.5, p_bursty=0.5), 64, gen)
    assert torch.equal(b.inputs[:, 1::2], world.label_vectors[b.seq_labels[:, :-1]])


def test_flip_labels_shifts_in_distribution_context_only(world, gen):
    b = generate_sequences(world, SequenceSpec(flip_labels=True, p_novel=0.5), 256, gen)
    shift = (~b.is_novel).long()[:, None]
    assert torch.equal(b.inputs[:, 1::2], world.label_vectors[(b.seq_labels[:, :-1] + shift) % L])
    assert b.is_novel.any() and (~b.is_novel).any()
    # Targets and seq_labels stay the true labels.
    assert torch.equal(b.targets, b.seq_labels[:, -1])
    known = ~b.is_novel
    assert torch.equal(b.targets[known], b.query_classes[known] % L)


def test_targets_are_query_labels(world, gen):
    b = generate_sequences(world, SequenceSpec(p_novel=0.3, p_bursty=0.5), 256, gen)
    assert torch.equal(b.targets, b.seq_labels[:, -1])
    assert torch.equal(b.seq_labels[:, :-1], b.context_classes % L)
    assert torch.equal(b.query_classes[b.is_novel], torch.full_like(b.query_classes[b.is_novel], -1))
    assert torch.equal(b.targets[~b.is_novel], b.query_classes[~b.is_novel] % L)


def test_items_are_exact_prototypes_without_noise(world, gen):
    b = generate_sequences(world, SequenceSpec(eps=0.0, p_bursty=0.5), 128, gen)
    items = items_of(b)
    assert torch.equal(items[:, :-1], world.class_means[b.context_classes])
    assert torch.equal(items[:, -1], world.class_means[b.query_classes])


def test_noisy_query_is_nearest_to_its_class(world, gen):
    b = generate_sequences(world, SequenceSpec(eps=0.1, p_bursty=0.5), 256, gen)
    query = b.inputs[:, -1]
    assert torch.equal(torch.cdist(query, world.class_means).argmin(1), b.query_classes)
    distance = (query - world.class_means[b.query_classes] / math.sqrt(1.01)).norm(dim=1)
    assert distance.max() < 0.3  # noise norm ~ eps = 0.1


def test_ape_offsets_cover_their_range(world, gen):
    spec = SequenceSpec()
    b = generate_sequences(world, spec, 2000, gen)
    assert b.pos_offsets.min() == 0 and b.pos_offsets.max() == 2 * spec.n_max - 2 * spec.N


# --- burstiness (§1.4 steps 1-7) ---------------------------------------------------------------


@pytest.mark.parametrize("B", [1, 2, 4])
def test_bursty_query_class_appears_at_least_B_times(world, gen, B):
    b = generate_sequences(world, SequenceSpec(B=B, eps=0.0, p_novel=0.5), 256, gen)
    known = ~b.is_novel
    matches = (b.context_classes == b.query_classes[:, None]).sum(1)
    assert (matches[known] >= B).all()
    # Novel queries have no class id; with eps = 0 the query item equals its context copies.
    items = items_of(b)
    copies = (items[:, :-1] == items[:, -1:]).all(-1).sum(1)
    assert (copies[b.is_novel] >= B).all()


def test_bursty_zipf_context_repeats_classes_in_multiples_of_B(world, gen):
    # alpha = 2 concentrates mass on a few classes, so duplicated slots do occur.
    b = generate_sequences(world, SequenceSpec(B=2, alpha=2.0, p_novel=0.3), 512, gen)
    counts = class_counts(b.context_classes, K + 128)
    assert (counts % 2 == 0).all()
    assert ((counts > 0).sum(1) < 4).any()  # some duplicate slots were drawn


@pytest.mark.parametrize("B", [1, 2, 4])
def test_no_repeats_gives_N_over_B_distinct_classes_B_times_each(world, gen, B):
    b = generate_sequences(world, SequenceSpec(B=B, no_repeats=True, p_novel=0.5), 256, gen)
    counts = class_counts(b.context_classes, K + 128)
    assert ((counts == 0) | (counts == B)).all()
    assert ((counts > 0).sum(1) == 8 // B).all()
    label_counts = class_counts(b.seq_labels[:, :-1], L)
    assert ((label_counts > 0).sum(1) == 8 // B).all()  # the distinct classes carry distinct labels


def test_novel_sequences_are_bursty_even_when_p_bursty_is_zero(world, gen):
    b = generate_sequences(world, SequenceSpec(B=2, p_bursty=0.0, p_novel=0.5, no_repeats=True), 256, gen)
    assert torch.equal(b.is_bursty, b.is_novel)
    assert (b.context_classes[b.is_novel] >= K).all() and (b.context_classes[~b.is_novel] < K).all()
    counts = class_counts(b.context_classes, K + 128)[b.is_novel]
    assert ((counts == 0) | (counts == 2)).all()


def test_B_zero_means_non_bursty_known_and_half_N_bursts_for_novel(world, gen):
    spec = SequenceSpec(B=0, p_bursty=1.0, p_novel=0.5, no_repeats=True)
    assert (spec.burst, spec.bursty_prob) == (4, 0.0)
    b = generate_sequences(world, spec, 256, gen)
    assert torch.equal(b.is_bursty, b.is_novel)
    counts = class_counts(b.context_classes, K + 128)[b.is_novel]
    assert ((counts == 0) | (counts == 4)).all()


def test_bursty_contexts_are_shuffled_per_row(world, gen):
    b = generate_sequences(world, SequenceSpec(B=4, no_repeats=True), 256, gen)
    context = b.context_classes
    tiled = context[:, :2].repeat(1, 4)  # the order before shuffling: slots repeated B times
    assert (context == tiled).all(1).float().mean() < 0.1
    # Every position shares the class of position 0 with prob 3/7; tiling without shuffle gives 0 at odd ones.
    first_slot_positions = (context == context[:, :1]).float().mean(0)
    assert (first_slot_positions > 0.25).all()


def test_non_bursty_contexts_are_iid_not_tiled(world, gen):
    b = generate_sequences(world, SequenceSpec(B=4, p_bursty=0.0, no_repeats=True), 256, gen)
    counts = class_counts(b.context_classes, K + 128)
    # i.i.d. uniform over 64 classes: 8 draws almost never form B-fold repeats.
    assert ((counts % 4 == 0).all(1)).float().mean() < 0.05


def test_non_bursty_classes_follow_zipf(gen):
    small = make_world(seed=0, K=16, L=4, D=8)
    b = generate_sequences(small, SequenceSpec(alpha=1.0, p_bursty=0.0), 4000, gen)
    drawn = torch.cat([b.context_classes.flatten(), b.query_classes])
    observed = torch.bincount(drawn, minlength=16).double()
    expected = zipf_probs(16, 1.0) * drawn.numel()
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    df = 15
    assert chi2 < df + 6 * math.sqrt(2 * df)


def test_non_bursty_query_is_independent_of_context(world, gen):
    b = generate_sequences(world, SequenceSpec(p_bursty=0.0), 512, gen)
    present = (b.context_classes == b.query_classes[:, None]).any(1).double().mean().item()
    assert present < 0.3  # K = 64 uniform, N = 8: P(present) ~ 0.12; bursty would give 1


# --- reproducibility ---------------------------------------------------------------------------


def assert_batches_equal(a: Batch, b: Batch):
    for f in fields(Batch):
        assert torch.equal(getattr(a, f.name), getattr(b, f.name)), f.name


def test_same_seed_same_batch_different_seed_different(world):
    spec = SequenceSpec(p_novel=0.3, p_bursty=0.7, alpha=1.0)
    a = generate_sequences(world, spec, 32, torch.Generator().manual_seed(5))
    assert_batches_equal(a, generate_sequences(world, spec, 32, torch.Generator().manual_seed(5)))
    c = generate_sequences(world, spec, 32, torch.Generator().manual_seed(6))
    assert not torch.equal(a.inputs, c.inputs)


def test_random_stream_does_not_depend_on_probabilities(world):
    """Raising p_novel only turns more rows novel; every other row and the APE shifts are unchanged."""
    low = generate_sequences(world, SequenceSpec(p_novel=0.3), 256, torch.Generator().manual_seed(9))
    high = generate_sequences(world, SequenceSpec(p_novel=0.6, flip_labels=True), 256,
                              torch.Generator().manual_seed(9))
    assert torch.equal(low.pos_offsets, high.pos_offsets)
    assert (high.is_novel | ~low.is_novel).all()
    same = ~high.is_novel
    assert torch.equal(low.context_classes[same], high.context_classes[same])
    assert torch.equal(low.inputs[same][:, 0::2], high.inputs[same][:, 0::2])  # items and query


# --- spec validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(N=8, B=3), "N=8 is not divisible by B=3"),
        (dict(N=8, B=8), "B=8 must be smaller than N=8"),
        (dict(N=7, B=0), "N=7 is odd"),
        (dict(p_bursty=1.5), "p_bursty=1.5"),
        (dict(p_novel=-0.1), "p_novel=-0.1"),
        (dict(eps=-1.0), "eps=-1.0"),
        (dict(alpha=-0.5), "alpha=-0.5"),
        (dict(N=40), "N=40 exceeds n_max=32"),
        (dict(N=0), "N=0"),
    ],
)
def test_bad_spec_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SequenceSpec(**kwargs)


def test_world_incompatible_with_spec_is_rejected(gen):
    with pytest.raises(ValueError, match="n_novel=128 must be a multiple of L=48"):
        generate_sequences(make_world(0, 48, 48, 8), SequenceSpec(), 4, gen)
    with pytest.raises(ValueError, match="N/B=8 distinct labels but L=2"):
        generate_sequences(make_world(0, 8, 2, 8), SequenceSpec(B=1, no_repeats=True), 4, gen)


# --- fixed test sets (§1.7) --------------------------------------------------------------------


def test_test_set_specs_keep_training_knobs():
    train = SequenceSpec(B=2, eps=0.2, alpha=1.0, no_repeats=True, p_bursty=0.6, p_novel=0.1)
    specs = test_set_specs(train)
    assert tuple(specs) == TEST_SET_NAMES and specs["Test"] == train
    for spec in specs.values():
        assert (spec.N, spec.eps, spec.alpha, spec.no_repeats) == (8, 0.2, 1.0, True)
    assert (specs["IC"].bursty_prob, specs["IC"].p_novel, specs["IC"].B) == (1.0, 1.0, 2)
    assert (specs["IC2"].bursty_prob, specs["IC2"].p_novel, specs["IC2"].flip_labels) == (1.0, 0.0, True)
    assert (specs["IW"].B, specs["IW"].bursty_prob, specs["IW"].p_novel) == (0, 0.0, 0.0)


def test_make_test_sets_properties(world):
    train = SequenceSpec(p_bursty=0.5, p_novel=0.25)
    sets = make_test_sets(world, train, S=200, seed=11)
    assert tuple(sets) == TEST_SET_NAMES
    ic, ic2, iw = sets["IC"], sets["IC2"], sets["IW"]
    assert ic.is_novel.all() and ic.is_bursty.all() and (ic.query_classes == -1).all()
    assert not iw.is_bursty.any() and not iw.is_novel.any()
    assert ic2.is_bursty.all() and not ic2.is_novel.any()
    assert torch.equal(ic2.inputs[:, 1::2], world.label_vectors[(ic2.seq_labels[:, :-1] + 1) % L])
    assert torch.equal(expected_target(ic2, "IC2", L), (ic2.targets + 1) % L)
    assert torch.equal(expected_target(ic, "IC", L), ic.targets)
    # Test is the first draw of the seeded generator with the training spec.
    assert_batches_equal(sets["Test"], generate_sequences(world, train, 200, torch.Generator().manual_seed(11)))
    assert 0 < sets["Test"].is_novel.float().mean() < 0.5


def test_make_test_sets_is_deterministic(world):
    a = make_test_sets(world, SequenceSpec(), S=16, seed=3)
    b = make_test_sets(world, SequenceSpec(), S=16, seed=3)
    for name in TEST_SET_NAMES:
        assert_batches_equal(a[name], b[name])
    assert not torch.equal(a["IC"].inputs, make_test_sets(world, SequenceSpec(), S=16, seed=4)["IC"].inputs)


def test_save_load_batches_round_trip(world, tmp_path):
    sets = make_test_sets(world, SequenceSpec(p_novel=0.5), S=16, seed=0)
    path = tmp_path / "test_sets.pt"
    save_batches(sets, path)
    assert list(tmp_path.iterdir()) == [path]  # no leftover .tmp
    torch.load(path, weights_only=True)  # plain tensors only
    loaded = load_batches(path)
    assert tuple(loaded) == TEST_SET_NAMES
    for name in TEST_SET_NAMES:
        assert_batches_equal(loaded[name], sets[name])


def test_truncated_batches_file_raises_value_error_naming_path(world, tmp_path):
    path = tmp_path / "test_sets.pt"
    save_batches(make_test_sets(world, SequenceSpec(), S=8, seed=0), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_batches(path)


def test_foreign_torch_file_raises_value_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ValueError, match="other.pt"):
        load_batches(path)


def test_batch_to_moves_every_field(world, gen):
    b = generate_sequences(world, SequenceSpec(), 4, gen).to("cpu")
    assert all(getattr(b, f.name).device.type == "cpu" for f in fields(Batch))
