"""Stage-2 members with an M2 encoder, and encoder pretraining runs (docs/images.md).

`build_image_member` assembles a Stage-2 run whose M2 goes through an encoder (App. E1: MLP,
1-D CNN or transformer on the Gaussian M2 vectors; App. I: a ViT on images) for the project's
one training loop (`mmicl.train.loop.fit`), exactly like a plain Stage-2 member: same world
checks, Stage-1 decoder, freezing and evaluation sets. With images, a frozen encoder and
eps2 = 0 the encoder's features are computed once per image (`FeatureCache`) and the stream
hands those to the model instead of pixels.

`pretrain_encoder` trains one `mmicl.plan.images.EncoderRun`: classification on the M2 world
(§1.8) or on the images, through the tasks of `mmicl.train_encoder` and their small Adam
driver (not `fit`, which trains sequence models: its evaluation sets, attention maps and
snapshots have no meaning for a classifier). It writes the same kind of outputs as a run, each
atomically, config.json last: encoder.pt, curve.parquet (iteration, split, loss, accuracy) and
config.json. It does not resume: a killed pretraining starts again (minutes at most here).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from mmicl import io
from mmicl.data.images.stream import FeatureCache, ImageStream
from mmicl.data.multimodal import generate_multimodal, make_multimodal_test_sets
from mmicl.data.multimodal import save_multimodal_batches
from mmicl.models.encoder_fusion import build_encoder_fusion
from mmicl.models.encoder_specs import config_from_dict
from mmicl.models.encoders import save_encoder
from mmicl.specs.images import IMAGE_SOURCES, caches_features, image_keys
from mmicl.specs.run import derive_seed


def load_pool(m2_data: str, root: str | None, K2: int):
    """The image pool of a run: glyphs/Omniglot through the Omniglot loader, or Mini-ImageNet."""
    from mmicl.train.members import InputError

    if not root:
        raise InputError(f"m2_data={m2_data!r} needs an image root (images.* in config.yaml; "
                         f"docs/images.md)")
    if m2_data in ("glyphs", "omniglot"):
        from mmicl.data.images.omniglot import omniglot_mm_pool

        return omniglot_mm_pool(root, K2)
    from mmicl.data.images.miniimagenet import miniimagenet_mm_pool

    return miniimagenet_mm_pool(K2, root)


def _save_without_images(batches, path) -> None:
    """Test sets of an image run whose M2 items are pixels: the images are left out (they are
    the pool's images, gigabytes as float); every other field is kept."""
    save_multimodal_batches({name: replace(b, m2_inputs=torch.empty(0))
                             for name, b in batches.items()}, path)


def build_image_member(spec, resolved, world, state, inputs, out_dir: Path, device, record):
    from mmicl.train.members import InputError, Member, init_model

    p2, keys = spec.params2, image_keys(spec.params2)
    if keys["encoder_pretrained"] and not inputs.encoder_model:
        raise InputError(f"{spec!r}: encoder_pretrained=true needs the pretrained encoder "
                         f"(inputs.encoder_model)")
    checkpoint = inputs.encoder_model if keys["encoder_pretrained"] else None
    model = init_model(lambda: build_encoder_fusion(
        resolved.model.decoder, resolved.encoder, encoder_checkpoint=checkpoint,
        freeze_encoder=keys["freeze_encoder"], projector=p2["projector"]), spec.seeds.init,
        device)
    if state is not None:
        model.decoder.load_state_dict(state)
        if p2["freeze_decoder"]:
            model.freeze_decoder(include_head=p2["freeze_head"])
    record = {**record, "m2_encoder": {"config": resolved.encoder.__dict__ | {
        "kind": resolved.encoder.kind}, "checkpoint": checkpoint}}
    S, seq = spec.train.batch_size, resolved.sequences
    world_dev = world.to(device)
    if resolved.m2_data not in IMAGE_SOURCES:  # vector encoder on the Gaussian M2 items
        test_sets = make_multimodal_test_sets(world_dev, seq, spec.eval.test_set_size,
                                              spec.seeds.eval_data, device=device)
        return Member(spec, model, lambda gen: generate_multimodal(world_dev, seq, S, gen),
                      test_sets, resolved.modulus, out_dir, save_multimodal_batches, record)
    pool = load_pool(resolved.m2_data, inputs.images, int(p2["K2"]))
    cache = None
    if caches_features(p2):
        cache = FeatureCache.build(model.encoder, pool)
        model.use_cached_features(cache)
    stream = ImageStream(world_dev, seq, pool, cache)
    test_sets = stream.test_sets(spec.eval.test_set_size, spec.seeds.eval_data)
    record |= {"images": pool.source, "feature_cache": cache is not None}
    return Member(spec, model, lambda gen: stream.sample(S, gen), test_sets, resolved.modulus,
                  out_dir, save_multimodal_batches if cache is not None else _save_without_images,
                  record)


# --------------------------------------------------------------------------------------------
# encoder pretraining


def encoder_task(run, world_path: str | None = None, images: str | None = None):
    """The pretraining task of an EncoderRun (mmicl.train_encoder)."""
    from mmicl.data.worlds import load_world
    from mmicl.train.members import InputError
    from mmicl.train_encoder import GaussianEncoderTask, ImageEncoderTask

    cfg = config_from_dict(run.encoder)
    s = run.settings
    if run.m2_data not in IMAGE_SOURCES:
        if not world_path:
            raise InputError(f"encoder run {run.run}: Gaussian pretraining needs its world")
        world = load_world(world_path)
        found = (world.m1.seed, world.m1.K, world.m1.L, world.m1.D, world.K2, world.L2,
                 world.D2)
        if tuple(run.world) != found:
            raise InputError(f"{world_path}: world {found} is not the encoder run's "
                             f"{tuple(run.world)}")
        return GaussianEncoderTask(world, cfg, eps0=s["eps0"], batch_size=s["batch_size"],
                                   val_seed=derive_seed(run.seed, "encoder-val"))
    if run.m2_data == "miniimagenet":
        from mmicl.data.images.miniimagenet import miniimagenet_pretrain_pools

        train, val = miniimagenet_pretrain_pools(run.K, images)
    else:
        from mmicl.data.images.omniglot import omniglot_pretrain_pools

        if not images:
            raise InputError(f"encoder run {run.run}: m2_data={run.m2_data!r} needs its "
                             f"image root")
        train, val = omniglot_pretrain_pools(images, run.K)
    return ImageEncoderTask(train, val, cfg, eps0=s["eps0"], batch_size=s["batch_size"])


def pretrain_encoder(run, out_dir: str | Path, world_path: str | None = None,
                     images: str | None = None, device: str = "cpu") -> pd.DataFrame:
    """Train one encoder run and write its outputs (see the module docstring)."""
    from mmicl.fingerprint import code_version
    from mmicl.train.members import init_model
    from mmicl.train_encoder import pretrain

    out_dir = Path(out_dir)
    for name in ("encoder.pt", "curve.parquet", "config.json"):
        (out_dir / name).unlink(missing_ok=True)
    task = encoder_task(run, world_path, images)
    s = run.settings
    model = init_model(task.build_model, derive_seed(run.seed, "encoder-init"), device)
    started = time.perf_counter()
    _, history = pretrain(task, s["iterations"], lr=s["lr"], weight_decay=s["weight_decay"],
                          seed=derive_seed(run.seed, "encoder-data"),
                          eval_every=s["eval_every"], model=model)
    seconds = time.perf_counter() - started
    rows = []
    for h in history:
        rows.append({"iteration": h["step"], "split": "train", "loss": h["train_loss"],
                     "accuracy": float("nan")})
        rows.append({"iteration": h["step"], "split": "val", "loss": h["val_loss"],
                     "accuracy": h["val_accuracy"]})
    curve = pd.DataFrame(rows)
    save_encoder(model, out_dir / "encoder.pt")
    io.write_parquet(curve, out_dir / "curve.parquet")
    io.write_json({**run.to_dict(), "code_version": code_version(), "train_seconds":
                   round(seconds, 3), "final_val_accuracy": history[-1]["val_accuracy"]},
                  out_dir / "config.json")
    print(f"{out_dir}: val accuracy {history[-1]['val_accuracy']:.3f} after "
          f"{s['iterations']} steps ({seconds:.1f} s)", file=sys.stderr)
    return curve
