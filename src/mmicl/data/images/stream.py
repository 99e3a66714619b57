"""Image M2 sequences for Stage 2 (App. I1/I2): the Gaussian multimodal generator picks every
class, an image pool supplies the pixels.

All class sampling (bursty / non-bursty / novel branches, M1 partners and items, label tokens,
swapped labels, APE shifts) is `generate_multimodal` on a multimodal world whose M2 part has K2
classes, with `n_novel2` = the pool's novel classes so that novel M2 class K2 + j is pool class j
(label j mod L2, as the authors' `labels_class_new2`). Its Gaussian M2 items are then replaced:
each (sequence, slot) gets a uniformly drawn image of its class, from the same generator, right
after the generator's draws for the batch:

* known classes: the training drawings in `split="train"`, the held-out drawings in
  `split="test"` (every fixed test set, as the authors' generate_test_sequence);
* novel classes: all drawings of the novel pool, in both splits;
* pixel noise `img / 255 + eps2 * N(0, 1)` per pixel, no renormalisation and no clipping
  (the authors' add_noise_to_img), drawn after the image choice.

A batch is a `MultimodalBatch` whose `m2_inputs` are float images (S, N+1, C, H, W) or, with a
`FeatureCache`, encoder features (S, N+1, out_dim).

Frozen-feature caching. A frozen encoder sees each pool image unchanged when eps2 = 0, so its
features are computed once per image (`FeatureCache.build`) and the stream gathers them instead
of pixels; the model then skips its encoder (`EncoderFusion.use_cached_features`). The numbers
are identical up to float summation order (tests/images/test_image_stream.py). It does not
apply with eps2 > 0 (fresh pixel noise at every occurrence), nor to a trainable encoder, nor to
the Gaussian-vector M2 of App. E1: those items carry fresh exemplar noise eps2 = 0.1 at every
occurrence, so no item ever repeats (at eps2 = 0 they would be the K2 prototypes themselves and
a per-class cache would apply; no figure uses that setting, so it is not implemented).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch

from mmicl.data.images.pool import ImagePool
from mmicl.data.multimodal import (
    TEST_SET_NAMES, MultimodalBatch, generate_multimodal, multimodal_test_set_specs,
)
from mmicl.data.specs import MultimodalSpec
from mmicl.data.worlds import MultimodalWorld, make_multimodal_world

SPLITS = ("train", "test")


def image_world(seed: int, K1: int, L1: int, D1: int, K2: int, L2: int) -> MultimodalWorld:
    """The multimodal world of an image run: M1 identical to Stage 1's world of the same seed
    (the M2 prototypes are drawn after it), M2 of dimension 1 (a placeholder: images replace
    the M2 items, only the class ids and labels are used)."""
    return make_multimodal_world(seed, K1, L1, D1, K2, L2, 1)


def encoder_fingerprint(encoder: torch.nn.Module) -> str:
    """SHA-1 of the encoder's state (names, shapes, bytes): ties a cache to its weights."""
    digest = hashlib.sha1()
    for name, tensor in sorted(encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class FeatureCache:
    """Encoder features of every image of a pool, in `ImagePool.bank()` order."""

    features: torch.Tensor  # (M, out_dim) float32
    fingerprint: str  # encoder_fingerprint of the encoder that computed them

    @staticmethod
    @torch.no_grad()
    def build(encoder, pool: ImagePool, batch_size: int = 512) -> FeatureCache:
        """Features in eval mode (no dropout, BatchNorm running statistics): the frozen encoder
        of EncoderFusion runs in eval mode too."""
        bank, _ = pool.bank()
        was_training = encoder.training
        encoder.eval()
        try:
            device = next(encoder.parameters()).device
            chunks = [encoder.features(bank[i:i + batch_size].to(device).float() / 255.0)
                      for i in range(0, len(bank), batch_size)]
        finally:
            encoder.train(was_training)
        return FeatureCache(torch.cat(chunks), encoder_fingerprint(encoder))


class ImageStream:
    """Batches of image M2 sequences (see the module docstring); deterministic per generator."""

    def __init__(self, world: MultimodalWorld, spec: MultimodalSpec, pool: ImagePool,
                 cache: FeatureCache | None = None):
        if world.K2 != pool.K2:
            raise ValueError(f"world has K2={world.K2} M2 classes but the image pool "
                             f"{pool.source or ''} holds {pool.K2} known classes")
        if cache is not None:
            if spec.eps2 != 0:
                raise ValueError(f"feature caching needs eps2 = 0, got eps2={spec.eps2}: pixel "
                                 f"noise is drawn per occurrence, before the encoder")
            n_images = pool.K2 * (pool.train.shape[1] + pool.heldout.shape[1]) \
                + pool.n_novel * pool.novel.shape[1]
            if cache.features.shape[0] != n_images:
                raise ValueError(f"feature cache holds {cache.features.shape[0]} images; the "
                                 f"pool has {n_images}")
        self.world, self.pool, self.cache = world, pool, cache
        self.spec = replace(spec, n_novel2=pool.n_novel)
        self.bank, self.layout = pool.bank()

    def image_ids(self, classes2: torch.Tensor, split: str, generator) -> torch.Tensor:
        """(S, N+1) M2 class ids (novel j = K2 + j) -> (S, N+1) indices into the pool bank."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; expected one of {SPLITS}")
        K2 = self.pool.K2
        known_offset, known_n = self.layout["train" if split == "train" else "heldout"]
        novel_offset, novel_n = self.layout["novel"]
        u = torch.rand(classes2.shape, generator=generator, device=classes2.device)
        known = known_offset + classes2.clamp(max=K2 - 1) * known_n \
            + (u * known_n).long().clamp(max=known_n - 1)
        novel = novel_offset + (classes2 - K2).clamp(min=0) * novel_n \
            + (u * novel_n).long().clamp(max=novel_n - 1)
        return torch.where(classes2 >= K2, novel, known)

    def sample(self, S: int, generator: torch.Generator, split: str = "train",
               spec: MultimodalSpec | None = None) -> MultimodalBatch:
        """One batch of S sequences; `spec` overrides the stream's (test sets), keeping its
        n_novel2 and eps2."""
        spec = self.spec if spec is None else replace(spec, n_novel2=self.pool.n_novel,
                                                      eps2=self.spec.eps2)
        batch = generate_multimodal(self.world, spec, S, generator)
        ids = self.image_ids(batch.m2_classes, split, generator)
        return replace(batch, m2_inputs=self.items(ids, generator))

    def items(self, ids: torch.Tensor, generator) -> torch.Tensor:
        """Cached features, or images /255 plus per-pixel noise eps2 (drawn from generator), on
        the device of `ids` (the world's). The pool stays where it was built (CPU)."""
        if self.cache is not None:
            return self.cache.features[ids.to(self.cache.features.device)].to(ids.device)
        images = self.bank[ids.to(self.bank.device)].to(ids.device).float().div_(255.0)
        if self.spec.eps2 > 0:
            images += self.spec.eps2 * torch.randn(images.shape, generator=generator,
                                                   device=ids.device)
        return images

    def test_sets(self, S: int, seed: int) -> dict[str, MultimodalBatch]:
        """Test / IC / IC2 / IW (§1.7) from one generator seeded once; known classes use their
        held-out drawings, as the authors' generate_test_sequence."""
        generator = torch.Generator(self.world.m1.class_means.device).manual_seed(seed)
        specs = multimodal_test_set_specs(self.spec)
        return {name: self.sample(S, generator, "test", specs[name]) for name in TEST_SET_NAMES}
