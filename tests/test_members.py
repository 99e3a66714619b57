"""A run's inputs are checked before it trains: its world, the Stage-1 world a multimodal world
must extend, and the Stage-1 checkpoint a two-stage run starts from."""

import dataclasses
import re

import pytest
import torch

from helpers import inputs, member, stage1, stage2, tier, train
from mmicl import io, paths, plan
from mmicl.data.worlds import make_world, save_world
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.train.members import InputError, build_member

SMALL = {"stage1": {"K": 64, "pe": "rope"},
         "stage2": {"K2": 32, "D2": 8},
         "train": {"batch_size": 8, "iterations": 6, "eval_every": 3, "checkpoint_every": 3,
                   "snapshot_every": 3},
         "train2": {"batch_size": 8, "iterations": 6, "eval_every": 3, "checkpoint_every": 3,
                    "snapshot_every": 3, "snapshot_dense_every": 0, "snapshot_dense_until": 0},
         "train_early_fusion": {"iterations": 6},
         "train_parent": {"iterations": 9, "stop_at_ic": 0.0, "eval_every": 3,
                          "snapshot_every": 3},
         "eval": {"test_set_size": 16, "attention_sequences": 4}}


@pytest.fixture
def t(tmp_path):
    return tier("smoke", results=tmp_path, **SMALL)


def test_trains_from_its_checkpoint_and_leaves_the_decoder_blocks_untouched(t):
    spec = stage2(t)
    out, curve = train(t, spec)
    assert curve.iteration.max() == 6
    before = io.load_torch(inputs(t, spec).stage1_model)
    after = io.load_torch(out / "model.pt")
    assert torch.equal(before["layers.0.attention.wq.weight"],
                       after["decoder.layers.0.attention.wq.weight"])
    assert not torch.equal(before["out.weight"], after["decoder.out.weight"])  # head trainable
    cfg = io.read_json(out / "config.json")
    parent = plan.parent(t, spec)
    assert cfg["spec"]["stage1_run"] == parent.run and cfg["trainable_params"] < cfg["num_params"]
    assert parent.train.iterations == SMALL["train_parent"]["iterations"] != 6
    final = io.read_parquet(paths.run_file(t["results"], parent, "final.parquet"))
    assert cfg["stage1_final"]["IC"] == final.set_index("split").accuracy["IC"]


def test_world_of_another_run_is_refused(t):
    spec = stage1(t, 0)
    good = inputs(t, spec)
    other = inputs(t, stage1(t, 1))
    with pytest.raises(InputError, match="does not match the run's"):
        build_member(spec, "unused", dataclasses.replace(good, world=other.world))


def test_world_that_does_not_extend_the_stage1_world_is_refused(t, tmp_path):
    spec = stage2(t)
    good = inputs(t, spec)
    save_world(make_world(1, 64, 32, 16), tmp_path / "other.parquet")
    with pytest.raises(InputError, match="differ from the Stage-1 world"):
        build_member(spec, tmp_path / "out",
                     dataclasses.replace(good, stage1_world=str(tmp_path / "other.parquet")))
    assert not (tmp_path / "out" / "model.pt").exists()


def test_checkpoint_of_another_architecture_is_refused(t, tmp_path):
    spec = stage2(t)
    io.save_torch(Decoder(DecoderConfig(content_dim=16, n_labels=32, n_heads=2)).state_dict(),
                  tmp_path / "wide.pt")
    with pytest.raises(InputError, match="wide.pt: Stage-1 checkpoint does not fit"):
        build_member(spec, tmp_path / "out",
                     dataclasses.replace(inputs(t, spec), stage1_model=str(tmp_path / "wide.pt")))


def test_early_fusion_takes_no_checkpoint(t, tmp_path):
    spec = stage2(t, early_fusion=True)
    assert inputs(t, spec).stage1_model is None
    with_model = dataclasses.replace(inputs(t, spec),
                                     stage1_model=inputs(t, stage2(t)).stage1_model)
    with pytest.raises(InputError, match="early-fusion runs take no Stage-1 checkpoint"):
        build_member(spec, tmp_path / "out", with_model)
    out, _ = train(t, spec)
    cfg = io.read_json(out / "config.json")
    assert cfg["trainable_params"] == cfg["num_params"]


def test_joint_label_run_trains_and_evaluates_over_the_whole_vocabulary(t):
    out, _ = train(t, stage2(t, label_mode="joint", G2=4))
    from mmicl.data.multimodal import load_multimodal_batches

    sets = load_multimodal_batches(out / "testsets.pt")
    assert sets["Test"].seq_labels.max() >= 4      # joint labels span L1, not just G2
    assert io.read_json(out / "config.json")["resolved"]["world"]["L2"] == 4
    m = member(t, stage2(t, label_mode="joint", G2=4))
    assert m.modulus == 32


def test_stage2_refuses_a_stage1_decoder_below_the_ic_threshold(tmp_path):
    t = tier("smoke", results=tmp_path, **SMALL)
    spec = stage2(t)
    ins = inputs(t, spec)
    parent = plan.parent(t, spec)
    ic = io.read_parquet(paths.run_file(t["results"], parent, "final.parquet")) \
        .set_index("split").accuracy["IC"]
    with pytest.raises(InputError, match=rf"starts from the Stage-1 run {re.escape(parent.run)} "
                                         rf"\(seed 0\), whose final IC accuracy is {ic:.3f} < "
                                         rf"min_stage1_ic=0.99"):
        build_member(spec, tmp_path / "out", dataclasses.replace(ins, min_stage1_ic=0.99))
    build_member(spec, tmp_path / "out", dataclasses.replace(ins, min_stage1_ic=ic))  # equal: ok
