"""Hot spots of the image appendix (issue 13): the ViT on a batch of image sequences, Stage-2 steps
with a frozen ViT on pixels vs cached features vs a trainable ViT, and the glyph render.

    python -m benchmarks.images --out benchmarks/results/images.json          # ~5 minutes
    python -m benchmarks.images --quick                                       # ~1 minute
    python -m benchmarks.images --glyphs                                      # + full render

Medians over repeats after a warm-up, one torch thread, load average recorded (another job on
the machine slows every number). Sizes: `reference` = the authors' Omniglot ViT (105 px, patch
15, dim 64, depth 2, 1 head); `laptop` = 28 px, patch 7 (16 patches), same width and depth;
`smoke` = 28 px, patch 14, dim 32, depth 1. A Stage-2 step = stream batch (128 sequences x 9
images) + forward + cross-entropy + backward + Adam on the trainable parameters, decoder APE
D1 = 63 frozen (the laptop defaults), K2 = 256 glyph-like classes of random binary images.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.run import host_info, median_time
from mmicl.data.images.pool import ImagePool
from mmicl.data.images.stream import FeatureCache, ImageStream, image_world
from mmicl.data.specs import MultimodalSpec
from mmicl.models.decoder import DecoderConfig
from mmicl.models.encoder_fusion import build_encoder_fusion
from mmicl.models.encoder_specs import (
    CNNEncoderConfig, MLPEncoderConfig, TransformerEncoderConfig, ViTEncoderConfig,
)
from mmicl.models.encoders import build_encoder

SIZES = {
    "reference": ViTEncoderConfig(image_size=105, patch_size=15, dim=64, depth=2),
    "laptop": ViTEncoderConfig(image_size=28, patch_size=7, dim=64, depth=2),
    "smoke": ViTEncoderConfig(image_size=28, patch_size=14, dim=32, depth=1),
}
SEQS, ITEMS, K2, N_NOVEL = 128, 9, 256, 128
DECODER = DecoderConfig(content_dim=63, n_labels=32, pe="ape")


def cpu_seconds(fn, calls: int) -> float:
    """CPU seconds of this process per call (less sensitive than wall time to other jobs)."""
    started = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - started) / calls


def encoder_params() -> dict:
    configs = {"mlp_D2=64": MLPEncoderConfig(input_dim=64),
               "cnn_D2=64": CNNEncoderConfig(input_dim=64),
               "transformer_D2=512": TransformerEncoderConfig(input_dim=512),
               **{f"vit_{k}": v for k, v in SIZES.items()}}
    return {k: {"features": build_encoder(c).num_params(False),
                "with_classifier_K=256": build_encoder(c).num_params()} for k, c in configs.items()}


def bench_vit(cfg: ViTEncoderConfig, repeats: int) -> dict:
    torch.manual_seed(0)
    enc = build_encoder(cfg)
    seqs = torch.rand(SEQS, ITEMS, cfg.channels, cfg.image_size, cfg.image_size)
    batch = seqs[:, 0]
    opt = torch.optim.Adam(enc.parameters(), lr=1e-3)

    def fwd_bwd():
        enc.zero_grad(set_to_none=True)
        enc.encode(seqs).sum().backward()

    def fwd():
        with torch.no_grad():
            enc.encode(seqs)

    def pretrain_step():
        loss = F.cross_entropy(enc(batch), torch.zeros(SEQS, dtype=torch.long))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return {"params": enc.num_params(False), "patches": cfg.n_patches,
            "fwd_bwd_ms_128x9": 1e3 * median_time(fwd_bwd, repeats),
            "fwd_nograd_ms_128x9": 1e3 * median_time(fwd, repeats),
            "pretrain_step_ms_batch128": 1e3 * median_time(pretrain_step, repeats)}


def random_pool(cfg: ViTEncoderConfig, seed: int = 0) -> ImagePool:
    g = torch.Generator().manual_seed(seed)
    shape = (cfg.channels, cfg.image_size, cfg.image_size)

    def draw(n, k):  # binary images, 80 % background
        return (torch.rand((n, k, *shape), generator=g) < 0.8).to(torch.uint8) * 255

    return ImagePool(draw(K2, 15), draw(K2, 5), draw(N_NOVEL, 20), source="random")


def bench_stage2(cfg: ViTEncoderConfig, repeats: int) -> dict:
    """ms per Stage-2 step for the three encoder regimes, plus the cache build."""
    pool = random_pool(cfg)
    world = image_world(0, 8192, 32, 63, K2, 32)
    out = {}
    for name, freeze, eps2, cached in (("frozen_pixels", True, 0.0, False),
                                       ("frozen_cached", True, 0.0, True),
                                       ("trainable_pixels_eps2=0.1", False, 0.1, False)):
        torch.manual_seed(0)
        model = build_encoder_fusion(DECODER, cfg, freeze_encoder=freeze, freeze_layers=True)
        cache = None
        if cached:
            started = time.perf_counter()
            cache = FeatureCache.build(model.encoder, pool)
            out["cache_build_s"] = time.perf_counter() - started
            model.use_cached_features(cache)
        stream = ImageStream(world, MultimodalSpec(N=8, B=4, eps2=eps2), pool, cache)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        gen = torch.Generator().manual_seed(1)
        model.train()

        def step():
            batch = stream.sample(SEQS, gen)
            loss = F.cross_entropy(model(batch.inputs, batch.m2_inputs, batch.pos_offsets),
                                   batch.targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        out[f"{name}_step_ms"] = 1e3 * median_time(step, repeats, inner=3 if cached else 1)
        out[f"{name}_step_cpu_ms"] = 1e3 * cpu_seconds(step, repeats)
        out[f"{name}_data_ms"] = 1e3 * median_time(lambda: stream.sample(SEQS, gen), repeats)
    out["cache_speedup_vs_frozen_pixels"] = (out["frozen_pixels_step_ms"]
                                             / out["frozen_cached_step_ms"])
    out["cache_speedup_vs_trainable"] = (out["trainable_pixels_eps2=0.1_step_ms"]
                                         / out["frozen_cached_step_ms"])
    out["pool_images"] = K2 * 20 + N_NOVEL * 20
    return out


def bench_glyphs() -> dict:
    from mmicl.data.images.glyphs import render_glyph_omniglot
    with tempfile.TemporaryDirectory() as tmp:
        r = render_glyph_omniglot(tmp, seed=0)
    return {"letters": r.n_letters, "classes": r.n_classes, "merged_letters": r.n_merged_letters,
            "merge_groups": r.n_merge_groups, "alphabets": len(r.alphabets),
            "wall_s": r.seconds, "cpu_s": r.cpu_seconds}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no reference size")
    parser.add_argument("--glyphs", action="store_true", help="also time the full glyph render")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    repeats = 2 if args.quick else 5
    sizes = {k: v for k, v in SIZES.items() if not (args.quick and k == "reference")}
    result = {"host_before": host_info(), "threads": args.threads,
              "encoder_params": encoder_params(),
              "vit": {k: bench_vit(c, repeats) for k, c in sizes.items()},
              "stage2": {k: bench_stage2(c, repeats) for k, c in sizes.items()}}
    if args.glyphs:
        result["glyphs"] = bench_glyphs()
    result["host_after"] = host_info()
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text, file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
