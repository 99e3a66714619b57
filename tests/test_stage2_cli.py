"""Stage-2 inputs are checked before training: the world must extend the Stage-1 world, the
checkpoint must fit the decoder."""

import json

import pandas as pd
import pytest
import torch

from mmicl import io
from mmicl.cli import main
from mmicl.data.worlds import make_multimodal_world, make_world, save_world
from mmicl.models.decoder import Decoder, DecoderConfig

P1 = {"K": 64, "L": 32, "D": 16, "N": 8, "B": 4, "p_bursty": 1.0, "p_novel": 0.0, "eps": 0.1,
      "alpha": 0.0, "no_repeats": False, "pe": "rope", "rope_impl": "reference",
      "rope_theta": 10000, "n_layers": 2, "n_heads": 1, "rms_norm": True,
      "mlp_variant": "reference"}
P2 = {"K2": 32, "L2": 32, "D2": 8, "N": 4, "B": 2, "p_bursty": 1.0, "p_novel": 0.0, "eps1": 0.1,
      "eps2": 0.1, "alpha1": 0.0, "alpha2": 0.0, "no_repeats": False, "projector": "small",
      "freeze_decoder": True, "freeze_head": False, "early_fusion": False,
      "label_mode": "standard", "G2": 4, "n_novel2": 0}
SPEC = {"run": "r", "stage1_run": "s", "seed": 0, "params1": P1, "params2": P2,
        "train": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.0,
                  "batch_size": 8, "iterations": 6, "eval_every": 3, "checkpoint_every": 3},
        "eval": {"test_set_size": 16, "attention_sequences": 4}, "device": "cpu"}


@pytest.fixture
def files(tmp_path):
    save_world(make_world(0, 64, 32, 16), tmp_path / "w1.parquet")
    save_world(make_multimodal_world(0, 64, 32, 16, 32, 32, 8), tmp_path / "mm.parquet")
    torch.manual_seed(0)
    io.save_torch(Decoder(DecoderConfig(content_dim=16, n_labels=32)).state_dict(),
                  tmp_path / "s1.pt")
    return tmp_path


def _args(tmp, world="mm.parquet", stage1_world="w1.parquet", model="s1.pt", spec=SPEC):
    return ["train-stage2", "--spec", json.dumps(spec), "--world", str(tmp / world),
            "--stage1-world", str(tmp / stage1_world), "--stage1-model",
            str(tmp / model) if model else "", "--out-dir", str(tmp / "out"), "--no-progress"]


def test_trains_from_a_matching_checkpoint_and_leaves_the_decoder_blocks_untouched(files):
    main(_args(files))
    curve = pd.read_parquet(files / "out/curve.parquet")
    assert curve.iteration.max() == 6
    before, after = io.load_torch(files / "s1.pt"), io.load_torch(files / "out/model.pt")
    assert torch.equal(before["layers.0.attention.wq.weight"],
                       after["decoder.layers.0.attention.wq.weight"])
    assert not torch.equal(before["out.weight"], after["decoder.out.weight"])  # head trainable
    cfg = json.loads((files / "out/config.json").read_text())
    assert cfg["init"] == "stage1" and cfg["trainable_params"] < cfg["num_params"]


def test_world_that_does_not_extend_the_stage1_world_is_refused(files):
    save_world(make_world(1, 64, 32, 16), files / "other.parquet")
    with pytest.raises(SystemExit, match="differ from the Stage-1 world"):
        main(_args(files, stage1_world="other.parquet"))
    assert not (files / "out" / "model.pt").exists()


def test_checkpoint_of_another_architecture_is_refused(files):
    io.save_torch(Decoder(DecoderConfig(content_dim=16, n_labels=32, n_heads=2)).state_dict(),
                  files / "wide.pt")
    with pytest.raises(SystemExit, match="does not fit the Stage-2 decoder"):
        main(_args(files, model="wide.pt"))


def test_early_fusion_takes_no_checkpoint(files):
    spec = json.loads(json.dumps(SPEC))
    spec["params2"].update(early_fusion=True, freeze_decoder=False)
    with pytest.raises(SystemExit, match="early-fusion runs take no --stage1-model"):
        main(_args(files, spec=spec))
    main(_args(files, spec=spec, model=""))
    cfg = json.loads((files / "out/config.json").read_text())
    assert cfg["init"].startswith("scratch") and cfg["trainable_params"] == cfg["num_params"]


def test_joint_label_run_trains_and_evaluates_over_the_whole_vocabulary(files):
    spec = json.loads(json.dumps(SPEC))
    spec["params2"].update(label_mode="joint", G2=4)
    save_world(make_multimodal_world(0, 64, 32, 16, 32, 4, 8), files / "joint.parquet")
    main(_args(files, spec=spec, world="joint.parquet"))
    from mmicl.data.multimodal import load_multimodal_batches

    sets = load_multimodal_batches(files / "out/testsets.pt")
    assert sets["Test"].seq_labels.max() >= 4      # joint labels span L1, not just G2
    cfg = json.loads((files / "out/config.json").read_text())
    assert cfg["joint_G2"] == 4
