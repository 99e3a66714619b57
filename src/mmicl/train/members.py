"""One run set up for training: its model (initialised from its own seed), its data stream, its
fixed evaluation sets, and the checks that its inputs belong to it.

`build_member(spec, out_dir, inputs)` is the only place a run is assembled, for a run trained
alone, one member of a sequential cohort, or one member of a stacked cohort alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmicl import io
from mmicl.data.multimodal import (
    generate_joint, generate_multimodal, make_multimodal_test_sets, save_multimodal_batches,
)
from mmicl.data.sequences import generate_sequences, make_test_sets, save_batches
from mmicl.data.worlds import World, load_world
from mmicl.models.decoder import Decoder
from mmicl.models.multimodal import MultimodalDecoder
from mmicl.specs import RunSpec, WorldKey, resolve


class InputError(ValueError):
    """A run's input file does not belong to it (world, Stage-1 world or checkpoint)."""


@dataclass
class RunInputs:
    """The files a run reads: its world; for Stage 2 also the Stage-1 world its M1 half must
    equal and (two-stage runs) the Stage-1 checkpoint of the same seed."""

    world: str
    stage1_world: str | None = None
    stage1_model: str | None = None
    min_stage1_ic: float = 0.0  # refuse a Stage-1 decoder whose final IC accuracy is lower
    encoder_model: str | None = None  # a pretrained M2 encoder (mmicl.train.encoders)
    images: str | None = None  # the image root of an image M2 run (mmicl.plan.images)


@dataclass
class Member:
    spec: RunSpec
    model: torch.nn.Module  # initial weights; evaluation and outputs go through this module
    sample: Callable[[torch.Generator], object]  # one training batch from the member's stream
    test_sets: dict
    modulus: int  # label modulus for IC2 targets
    out_dir: Path
    save_test_sets: Callable = field(repr=False, default=save_batches)
    record: dict = field(default_factory=dict)  # extra config.json entries (e.g. the Stage-1 IC)


def init_model(build: Callable[[], torch.nn.Module], seed: int, device) -> torch.nn.Module:
    """Build a model from its own RNG stream, leaving the global torch RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build()
    return model.to(device)


def _world_key(world) -> WorldKey:
    if isinstance(world, World):
        return WorldKey(world.seed, world.K, world.L, world.D)
    m1 = world.m1
    return WorldKey(m1.seed, m1.K, m1.L, m1.D, world.K2, world.L2, world.D2)


def _checked_world(path: str, expected: WorldKey):
    world = load_world(path)
    if _world_key(world) != expected:
        raise InputError(f"{path}: world {_world_key(world)} does not match the run's {expected}")
    return world


def _checked_stage1_state(path: str, decoder_cfg) -> dict:
    state = io.load_torch(path)
    expected = {k: tuple(v.shape) for k, v in Decoder(decoder_cfg).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()} if isinstance(state, dict) else {}
    if expected != found:
        raise InputError(f"{path}: Stage-1 checkpoint does not fit the Stage-2 decoder "
                         f"(parameters differ: {sorted(set(expected.items()) ^ set(found.items()))[:4]})")
    return state


def stage1_final(model_path: str) -> dict:
    """The final evaluation (split -> accuracy) of the Stage-1 run whose model.pt this is."""
    path = Path(model_path).parent / "final.parquet"
    if not path.exists():
        raise InputError(f"{path}: missing; a Stage-1 checkpoint comes with its run's final "
                         f"evaluation (the Stage-2 job reads its IC accuracy)")
    final = io.read_parquet(path)
    return {row.split: float(row.accuracy) for row in final.itertuples() if row.split != "train"}


def build_member(spec: RunSpec, out_dir: str | Path, inputs: RunInputs,
                 device: str | None = None) -> Member:
    """The run `spec`, initialised exactly as every path trains it."""
    device = device or spec.device
    resolved = resolve(spec)
    seeds = spec.seeds
    world = _checked_world(inputs.world, resolved.world)
    S = spec.train.batch_size
    if spec.stage == 1:
        model = init_model(lambda: Decoder(resolved.model), seeds.init, device)
        world_dev = world.to(device)
        test_sets = make_test_sets(world_dev, resolved.sequences, spec.eval.test_set_size,
                                   seeds.eval_data, device=device)
        seq = resolved.sequences
        return Member(spec, model, lambda gen: generate_sequences(world_dev, seq, S, gen),
                      test_sets, resolved.modulus, Path(out_dir), save_batches)

    if inputs.stage1_world is None:
        raise InputError(f"{spec!r}: a Stage-2 run needs the Stage-1 world it extends")
    if not world.m1.equals(load_world(inputs.stage1_world)):
        raise InputError(f"{inputs.world}: its M1 prototypes/labels differ from the Stage-1 world "
                         f"{inputs.stage1_world}; Stage 2 must see exactly the M1 world its "
                         f"checkpoint learned")
    if spec.early_fusion != (not inputs.stage1_model):
        raise InputError(f"{spec!r}: early-fusion runs take no Stage-1 checkpoint; two-stage runs "
                         f"need one (got {inputs.stage1_model!r})")
    record, state = {}, None
    if inputs.stage1_model:
        state = _checked_stage1_state(inputs.stage1_model, resolved.model.decoder)
        final = stage1_final(inputs.stage1_model)
        record["stage1_final"] = final
        if final.get("IC", 0.0) < inputs.min_stage1_ic:
            raise InputError(
                f"{spec!r} starts from the Stage-1 run {spec.stage1_run} (seed {spec.seed}), whose "
                f"final IC accuracy is {final.get('IC', 0.0):.3f} < min_stage1_ic="
                f"{inputs.min_stage1_ic}: that decoder has not formed its ICL circuit; train it "
                f"longer (train_parent.iterations) or lower min_stage1_ic")
    if resolved.encoder is not None:
        from mmicl.train.images import build_image_member

        return build_image_member(spec, resolved, world, state, inputs, Path(out_dir), device,
                                  record)
    model = init_model(lambda: MultimodalDecoder(resolved.model), seeds.init, device)
    if state is not None:
        model.decoder.load_state_dict(state)
        if spec.params2["freeze_decoder"]:
            model.freeze_decoder(include_head=spec.params2["freeze_head"])
    world_dev = world.to(device)
    seq, G2 = resolved.sequences, resolved.joint_G2
    test_sets = make_multimodal_test_sets(world_dev, seq, spec.eval.test_set_size,
                                          seeds.eval_data, device=device, G2=G2)
    if G2 is None:
        sample = lambda gen: generate_multimodal(world_dev, seq, S, gen)  # noqa: E731
    else:
        sample = lambda gen: generate_joint(world_dev, G2, seq, S, gen)  # noqa: E731
    return Member(spec, model, sample, test_sets, resolved.modulus, Path(out_dir),
                  save_multimodal_batches, record)
