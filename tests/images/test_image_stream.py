"""Image M2 stream: class sampling is generate_multimodal's, images match their classes and
splits, pixel noise as the authors; frozen-feature caching gives the recomputed logits."""

import pytest
import torch
from image_fixtures import decode_identity

from mmicl.data.images.omniglot import omniglot_mm_pool
from mmicl.data.images.stream import FeatureCache, ImageStream, image_world
from mmicl.data.multimodal import generate_multimodal
from mmicl.data.specs import MultimodalSpec
from mmicl.models.decoder import DecoderConfig
from mmicl.models.encoder_fusion import build_encoder_fusion
from mmicl.models.encoder_specs import ViTEncoderConfig

K2, L2, N_NOVEL = 4, 4, 3


@pytest.fixture
def pool(omniglot_root):
    return omniglot_mm_pool(omniglot_root, K2=K2, n_novel=N_NOVEL)


@pytest.fixture
def world():
    return image_world(seed=0, K1=32, L1=8, D1=16, K2=K2, L2=L2)


def spec(**kw):
    return MultimodalSpec(**{"N": 4, "B": 2, "eps1": 0.1, "eps2": 0.0, "p_novel": 0.5, **kw})


def clean(images):
    """Float images back to uint8 (exact for eps2 = 0)."""
    return (images * 255).round().to(torch.uint8)


@pytest.mark.parametrize("split", ["train", "test"])
def test_images_match_classes_and_split(world, pool, split):
    stream = ImageStream(world, spec(), pool)
    batch = stream.sample(64, torch.Generator().manual_seed(0), split)
    assert batch.m2_inputs.shape == (64, 5, 1, 12, 12) and batch.m2_inputs.dtype == torch.float32
    assert set(batch.m2_inputs.unique().tolist()) == {0.0, 1.0}
    images = clean(batch.m2_inputs)
    seen_drawings = set()
    for s in range(64):
        for i in range(5):
            char, drawing = decode_identity(images[s, i])
            c = int(batch.m2_classes[s, i])
            if c >= K2:  # novel class j = last N_NOVEL characters of the 10-character tree
                assert char == 10 - N_NOVEL + (c - K2)
            else:
                assert char == c
                assert drawing < 15 if split == "train" else drawing >= 15
                seen_drawings.add(drawing)
            assert int(batch.seq_labels[s, i]) == c % L2
    assert len(seen_drawings) > 3  # drawings vary
    assert batch.is_novel.any() and (~batch.is_novel).any()


def test_class_sampling_is_generate_multimodal(world, pool):
    stream = ImageStream(world, spec(), pool)
    a = stream.sample(32, torch.Generator().manual_seed(7))
    ref = generate_multimodal(world, stream.spec, 32, torch.Generator().manual_seed(7))
    for name in ("inputs", "targets", "seq_labels", "m1_classes", "m2_classes", "pos_offsets"):
        assert torch.equal(getattr(a, name), getattr(ref, name)), name
    b = stream.sample(32, torch.Generator().manual_seed(7))
    assert torch.equal(a.m2_inputs, b.m2_inputs)


def test_pixel_noise_is_additive_unclipped(world, pool):
    noisy = ImageStream(world, spec(eps2=0.2), pool).sample(32, torch.Generator().manual_seed(1))
    plain = ImageStream(world, spec(), pool).sample(32, torch.Generator().manual_seed(1))
    assert torch.equal(noisy.m2_classes, plain.m2_classes)
    residual = noisy.m2_inputs - plain.m2_inputs
    assert abs(residual.std().item() - 0.2) < 0.01 and abs(residual.mean().item()) < 0.01
    assert noisy.m2_inputs.min() < 0 and noisy.m2_inputs.max() > 1  # no clipping


def test_test_sets_use_heldout_drawings(world, pool):
    sets = ImageStream(world, spec(), pool).test_sets(48, seed=3)
    assert sets["IC"].is_novel.all() and not sets["IW"].is_novel.any()
    for name in ("IC2", "IW"):
        images = clean(sets[name].m2_inputs)
        drawings = {decode_identity(images[s, i])[1] for s in range(48) for i in range(5)}
        assert min(drawings) >= 15


def tiny_fusion(freeze_encoder=True, **kw):
    torch.manual_seed(0)
    return build_encoder_fusion(
        DecoderConfig(content_dim=16, n_labels=8, pe="ape"),
        ViTEncoderConfig(image_size=12, patch_size=6, dim=16, num_classes=K2),
        freeze_encoder=freeze_encoder, **kw)


def test_cached_features_give_the_recomputed_logits(world, pool):
    model = tiny_fusion()
    model.train()  # the frozen encoder stays in eval mode
    direct = ImageStream(world, spec(), pool).sample(40, torch.Generator().manual_seed(5))
    logits = model(direct.inputs, direct.m2_inputs, direct.pos_offsets)
    cache = FeatureCache.build(model.encoder, pool)
    assert cache.features.shape == (K2 * 20 + N_NOVEL * 20, 16)
    cached = ImageStream(world, spec(), pool, cache).sample(40, torch.Generator().manual_seed(5))
    assert cached.m2_inputs.shape == (40, 5, 16)
    assert torch.equal(cached.inputs, direct.inputs)
    model.use_cached_features(cache)
    cached_logits = model(cached.inputs, cached.m2_inputs, cached.pos_offsets)
    torch.testing.assert_close(cached_logits, logits, rtol=1e-5, atol=1e-6)
    # and it trains: gradients reach the projector, not the frozen encoder
    cached_logits.logsumexp(-1).sum().backward()
    assert model.projector.linears[0].weight.grad is not None
    assert all(p.grad is None for p in model.encoder.parameters())


def test_cache_refusals(world, pool):
    model = tiny_fusion()
    cache = FeatureCache.build(model.encoder, pool)
    with pytest.raises(ValueError, match=r"feature caching needs eps2 = 0, got eps2=0.1"):
        ImageStream(world, spec(eps2=0.1), pool, cache)
    trainable = tiny_fusion(freeze_encoder=False)
    with pytest.raises(ValueError, match="needs a frozen encoder"):
        trainable.use_cached_features(FeatureCache.build(trainable.encoder, pool))
    with torch.no_grad():
        model.encoder.pos_embedding.add_(1.0)  # weights changed after the cache was built
    with pytest.raises(ValueError, match="computed by another encoder"):
        model.use_cached_features(cache)
