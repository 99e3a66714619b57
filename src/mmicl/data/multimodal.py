"""Multimodal triplet sequences `x1_i x2_i y_i ... x1_q x2_q` (protocol §1.5) and their test sets.

Layout of `inputs` (S, 3N+2, D1): M1 item of pair i at 3i, a zero M2 slot at 3i+1 (the model
writes the projected M2 feature there), the label token at 3i+2, the M1 query at 3N and the M2
query slot at 3N+1, where the prediction is read. `m2_inputs` (S, N+1, D2) holds the N context M2
items and the M2 query.

Bursty contexts are driven by M2: N/B M2 classes, each paired with an M1 class of the same label
(drawn with the M1 Zipf weights restricted to that label), the pairs tiled B times and shuffled.
Non-bursty sequences pair M1 and M2 independently, as the authors do (§9.9): the label token
follows M2 and the M1 items are label-inconsistent distractors, so IW accuracy measures M2->label
memorisation. Like sequences.py, every call draws the same random tensors in the same order, so a
seed fixes a batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from mmicl.data.sequences import (
    _distinct_label_slots, _prototypes, _zipf_draws, exemplars, load_batches,
    save_batches, test_set_specs, zipf_probs,
)
from mmicl.data.specs import MultimodalSpec
from mmicl.data.worlds import MultimodalWorld


@dataclass
class MultimodalBatch:
    inputs: torch.Tensor  # (S, 3N+2, D1), zeros at the M2 slots
    m2_inputs: torch.Tensor  # (S, N+1, D2)
    targets: torch.Tensor  # (S,) TRUE query label
    seq_labels: torch.Tensor  # (S, N+1) true labels of the pairs, then the query's
    m1_classes: torch.Tensor  # (S, N+1) M1 class ids, novel j stored as K1 + j
    m2_classes: torch.Tensor  # (S, N+1) M2 class ids, novel j stored as K2 + j
    is_novel: torch.Tensor
    is_bursty: torch.Tensor
    pos_offsets: torch.Tensor  # (S,) APE shift in 0..2*n_max+1-(3N+2)

    def to(self, device) -> "MultimodalBatch":
        return MultimodalBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __len__(self) -> int:
        return self.targets.shape[0]


def _pick_partners(candidates: torch.Tensor, weights: torch.Tensor, generator) -> torch.Tensor:
    """One M1 class per slot among `candidates` (..., R), drawn with `weights` renormalised."""
    shape = candidates.shape[:-1]
    p = weights[candidates].reshape(-1, candidates.shape[-1])
    pick = torch.multinomial(p, 1, generator=generator).view(*shape, 1)
    return candidates.gather(-1, pick).squeeze(-1)


def _tile_and_shuffle(slot_a, slot_b, B: int, generator):
    """Tile the pairs (slot_a[i], slot_b[i]) B times and shuffle pairs per row, keeping pairing."""
    a, b = slot_a.repeat(1, B), slot_b.repeat(1, B)
    order = torch.rand(a.shape, generator=generator, device=a.device).argsort(dim=1)
    return a.gather(1, order), b.gather(1, order)


def _append_query(context: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
    """(S, N) context classes -> (S, N+1): the class at each row's query position appended."""
    return torch.cat([context, context.gather(1, query_pos)], dim=1)


def generate_multimodal(world: MultimodalWorld, spec: MultimodalSpec, S: int,
                        generator: torch.Generator) -> MultimodalBatch:
    m1 = world.m1
    K1, L1, D1, K2, L2, D2 = m1.K, m1.L, m1.D, world.K2, world.L2, world.D2
    N, device = spec.N, m1.class_means.device
    if spec.n_novel1 % L1:
        raise ValueError(f"n_novel1={spec.n_novel1} must be a multiple of L1={L1}")
    uni = spec.as_unimodal()
    slots, burst = uni.n_slots, uni.burst
    n_novel2 = spec.novel_m2_count(K1, K2, L2)
    novel1 = torch.randn(spec.n_novel1, D1, generator=generator, device=device) / math.sqrt(D1)
    novel2 = torch.randn(n_novel2, D2, generator=generator, device=device) / math.sqrt(D2)
    zipf1 = zipf_probs(K1, spec.alpha1, device)

    # In-distribution: M2 slots | i.i.d. M2 context | i.i.d. M2 query, and i.i.d. M1 draws.
    z2 = _zipf_draws(zipf_probs(K2, spec.alpha2, device), (S, slots + N + 1), generator)
    z1 = _zipf_draws(zipf1, (S, N + 1), generator)
    m2_slots = z2[:, :slots]
    if spec.no_repeats:
        m2_slots = _distinct_label_slots(S, slots, L2, K2 // L2, generator, device)
    m1_slots = _pick_partners(world.m2_to_m1[m2_slots], zipf1, generator)
    known1, known2 = _tile_and_shuffle(m1_slots, m2_slots, burst, generator)

    # Novel: uniform novel M2 classes, a same-label novel M1 partner chosen uniformly.
    n2 = torch.randint(0, n_novel2, (S, slots), generator=generator, device=device)
    rows = torch.randint(0, spec.n_novel1 // L1, (S, slots), generator=generator, device=device)
    n1 = rows * L1 + n2 % L2
    novel_ctx1, novel_ctx2 = _tile_and_shuffle(n1 + K1, n2 + K2, burst, generator)

    query_pos = torch.randint(0, N, (S, 1), generator=generator, device=device)
    bursty = torch.rand(S, generator=generator, device=device) < uni.bursty_prob
    novel = torch.rand(S, generator=generator, device=device) < spec.p_novel

    with_query = lambda ctx: _append_query(ctx, query_pos)  # noqa: E731
    known1 = torch.where(bursty[:, None], with_query(known1), z1)
    known2 = torch.where(bursty[:, None], with_query(known2), z2[:, slots:])
    classes1 = torch.where(novel[:, None], with_query(novel_ctx1), known1)  # (S, N+1)
    classes2 = torch.where(novel[:, None], with_query(novel_ctx2), known2)

    labels = classes2 % L2  # K2 is a multiple of L2, so novel ids keep their label
    return _assemble(world, spec, classes1, classes2, labels, L2, novel, bursty,
                     (novel1, novel2), generator)


def _assemble(world, spec, classes1, classes2, labels, n_labels, novel, bursty, novel_means,
              generator) -> MultimodalBatch:
    """Exemplars, label tokens (flipped for in-distribution rows if asked) and the APE shift."""
    S, N = labels.shape[0], spec.N
    m1, device = world.m1, labels.device
    items1 = exemplars(_prototypes(m1.class_means, novel_means[0], classes1), spec.eps1, generator)
    items2 = exemplars(_prototypes(world.m2_class_means, novel_means[1], classes2), spec.eps2,
                       generator)
    shown = (labels[:, :N] + (spec.flip_labels & ~novel).long()[:, None]) % n_labels
    pos_offsets = torch.randint(0, 2 * spec.n_max + 1 - (3 * N + 2) + 1, (S,),
                                generator=generator, device=device)
    inputs = torch.zeros(S, 3 * N + 2, m1.D, device=device, dtype=items1.dtype)
    inputs[:, 0 : 3 * N : 3] = items1[:, :N]
    inputs[:, 2 : 3 * N : 3] = m1.label_vectors[shown]
    inputs[:, 3 * N] = items1[:, N]
    return MultimodalBatch(
        inputs=inputs, m2_inputs=items2, targets=labels[:, N], seq_labels=labels,
        m1_classes=classes1, m2_classes=classes2, is_novel=novel, is_bursty=bursty | novel,
        pos_offsets=pos_offsets,
    )


def generate_joint(world: MultimodalWorld, G2: int, spec: MultimodalSpec, S: int,
                   generator: torch.Generator) -> MultimodalBatch:
    """Joint-label sequences (§1.6): the label of a pair needs both modalities,
    y = g1(k1)·G2 + g2(k2) with g1(k) = k mod G1, g2(k) = k mod G2 and G1 = L1 / G2, so the world
    is the multimodal world with L2 = G2 and its M1 half is the Stage-1 world. M1 and M2 classes
    of a pair are drawn independently (no_repeats does not apply). Swapped labels shift the
    context label tokens only; targets stay true (the authors also shift the target, which their
    evaluator shifts again: the §9.8 double shift, fixed here)."""
    m1 = world.m1
    K1, L, D1, K2, D2 = m1.K, m1.L, m1.D, world.K2, world.D2
    if L % G2 or K2 % G2:
        raise ValueError(f"G2={G2} must divide L1={L} and K2={K2} (G1 = L1 / G2 groups)")
    G1, N, device = L // G2, spec.N, m1.class_means.device
    uni = spec.as_unimodal()
    slots, burst = uni.n_slots, uni.burst
    n_novel1 = max(G1, 128 // G1 * G1)
    n_novel2 = max(G2, (128 * K2 // K1) // G2 * G2)
    novel1 = torch.randn(n_novel1, D1, generator=generator, device=device) / math.sqrt(D1)
    novel2 = torch.randn(n_novel2, D2, generator=generator, device=device) / math.sqrt(D2)

    z1 = _zipf_draws(zipf_probs(K1, spec.alpha1, device), (S, slots + N + 1), generator)
    z2 = _zipf_draws(zipf_probs(K2, spec.alpha2, device), (S, slots + N + 1), generator)
    known1, known2 = _tile_and_shuffle(z1[:, :slots], z2[:, :slots], burst, generator)
    n1 = torch.randint(0, n_novel1, (S, slots), generator=generator, device=device)
    n2 = torch.randint(0, n_novel2, (S, slots), generator=generator, device=device)
    novel_ctx1, novel_ctx2 = _tile_and_shuffle(n1 + K1, n2 + K2, burst, generator)
    query_pos = torch.randint(0, N, (S, 1), generator=generator, device=device)
    bursty = torch.rand(S, generator=generator, device=device) < uni.bursty_prob
    novel = torch.rand(S, generator=generator, device=device) < spec.p_novel

    with_query = lambda ctx: _append_query(ctx, query_pos)  # noqa: E731
    classes1 = torch.where(novel[:, None], with_query(novel_ctx1),
                           torch.where(bursty[:, None], with_query(known1), z1[:, slots:]))
    classes2 = torch.where(novel[:, None], with_query(novel_ctx2),
                           torch.where(bursty[:, None], with_query(known2), z2[:, slots:]))
    # K1 and K2 are multiples of G1 and G2, so novel ids keep their group.
    labels = classes1 % G1 * G2 + classes2 % G2
    return _assemble(world, spec, classes1, classes2, labels, L, novel, bursty,
                     (novel1, novel2), generator)


TEST_SET_NAMES = ("Test", "IC", "IC2", "IW")


# The four sets differ from training only in p_bursty, p_novel, flip_labels and B, which the
# multimodal spec shares with the unimodal one, so the unimodal definition (§1.7) applies as is.
multimodal_test_set_specs = test_set_specs


def make_multimodal_test_sets(world: MultimodalWorld, train: MultimodalSpec, S: int, seed: int,
                              device="cpu", G2: int | None = None) -> dict[str, MultimodalBatch]:
    """The four fixed sets; with G2 the joint-label sets."""
    world = world.to(device)
    generator = torch.Generator(device).manual_seed(seed)
    specs = multimodal_test_set_specs(train)
    if G2 is None:
        return {name: generate_multimodal(world, specs[name], S, generator)
                for name in TEST_SET_NAMES}
    return {name: generate_joint(world, G2, specs[name], S, generator) for name in TEST_SET_NAMES}


def save_multimodal_batches(batches: dict[str, MultimodalBatch], path) -> None:
    save_batches(batches, path)


def load_multimodal_batches(path, device="cpu") -> dict[str, MultimodalBatch]:
    return load_batches(path, device, cls=MultimodalBatch)
