"""Training one run: outputs, determinism, seeds, and that every optimizer learns the task."""

import pandas as pd
import pytest
import torch

from helpers import stage1, tier, train
from mmicl import io
from mmicl.data.sequences import load_batches
from mmicl.specs import TrainConfig, derive_seed

SMALL = {"stage1": {"K": 64, "pe": "rope", "D": {"ape": 15, "hybrid": 14, "rope": 16, "alibi": 16}},
         "train": {"batch_size": 16, "iterations": 30, "eval_every": 10, "checkpoint_every": 10,
                   "snapshot_every": 15},
         "eval": {"test_set_size": 32, "attention_sequences": 4}}


def _run(tmp_path, seed=0, **train_overrides):
    settings = {**SMALL["train"], **train_overrides}
    overrides = {**SMALL, "train": settings, "train_parent": {**settings, "stop_at_ic": 0.0}}
    t = tier("smoke", results=tmp_path, **overrides)
    return train(t, stage1(t, seed))


def test_outputs_and_curve_layout(tmp_path):
    out, curve = _run(tmp_path)
    for name in ("model.pt", "snapshots.pt", "testsets.pt", "curve.parquet", "final.parquet",
                 "attention.parquet", "config.json"):
        assert (out / name).exists(), name
    assert not (out / "resume.pt").exists()
    # evaluations at 0, every eval_every, and every snapshot (15): the indicator step reads them
    assert sorted(curve.iteration.unique()) == [0, 10, 15, 20, 30]
    assert set(curve[curve.iteration == 0].split) == {"Test", "IC", "IC2", "IW"}  # no train yet
    assert set(curve[curve.iteration == 30].split) == {"train", "Test", "IC", "IC2", "IW"}
    final = pd.read_parquet(out / "final.parquet")
    assert (final.iteration == 30).all() and len(final) == 5
    cfg = io.read_json(out / "config.json")
    assert cfg["resolved"]["seeds"] == {"run": 0, "init": derive_seed(0, "init"),
                                        "train_data": derive_seed(0, "train-data"),
                                        "eval_data": derive_seed(0, "eval-data")}
    assert cfg["resolved"]["model"]["pe"] == "rope" and cfg["spec"]["stage"] == 1
    # 2 layers x (3 attention 16x16 + 3 MLP 16x16 with bias + 2 norms) + final norm + head
    assert cfg["num_params"] == 2 * (3 * 256 + 3 * (256 + 16) + 2 * 16) + 16 + 32 * 16
    sets = load_batches(out / "testsets.pt")
    assert set(sets) == {"Test", "IC", "IC2", "IW"} and len(sets["IC"]) == 32


def test_same_seed_same_result_different_seed_different(tmp_path):
    a, _ = _run(tmp_path / "a")
    b, _ = _run(tmp_path / "b")
    c, _ = _run(tmp_path / "c", seed=1)
    wa, wb, wc = (io.load_torch(d / "model.pt") for d in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not torch.equal(wa["out.weight"], wc["out.weight"])
    pd.testing.assert_frame_equal(pd.read_parquet(a / "curve.parquet"),
                                  pd.read_parquet(b / "curve.parquet"))


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_reduce_the_loss(tmp_path, optimizer):
    lr = 0.5 if optimizer == "sgd" else 3e-3
    _, curve = _run(tmp_path, optimizer=optimizer, lr=lr, batch_size=32, iterations=120,
                    eval_every=60, checkpoint_every=60, snapshot_every=60)
    test = curve[curve.split == "Test"].set_index("iteration").loss
    assert test[120] < test[0] - 0.3


@pytest.mark.parametrize("bad, message", [
    ({"optimizer": "lion"}, "optimizer='lion'"),
    ({"iterations": 10, "eval_every": 20}, "eval_every=20 exceeds iterations=10"),
    ({"snapshot_dense_every": 5}, "set together"),
])
def test_bad_train_config_is_named(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**bad)
