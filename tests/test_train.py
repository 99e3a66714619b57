"""train_run: outputs, determinism, seeds, and that Adam actually learns the task."""

import json

import pandas as pd
import pytest
import torch

from mmicl import io
from mmicl.config import TrainConfig, derive_seed
from mmicl.data.sequences import SequenceSpec, load_batches
from mmicl.data.worlds import make_world
from mmicl.models.decoder import DecoderConfig
from mmicl.train import RunSeeds, train_run

SMALL = dict(seq=SequenceSpec(B=4, eps=0.1),
             model_cfg=DecoderConfig(content_dim=16, n_labels=32, pe="rope"),
             train_cfg=TrainConfig(batch_size=16, iterations=30, eval_every=10, checkpoint_every=10))


def _run(out, seed=0, **kw):
    args = {**SMALL, **kw}
    return train_run(make_world(seed, 64, 32, 16), out_dir=out, seed=seed, test_set_size=32,
                     attention_sequences=4, progress=False, meta={"run": "t"}, **args)


def test_outputs_and_curve_layout(tmp_path):
    curve = _run(tmp_path)
    for name in ("model.pt", "testsets.pt", "curve.parquet", "final.parquet", "attention.parquet",
                 "config.json"):
        assert (tmp_path / name).exists(), name
    assert not (tmp_path / "resume.pt").exists()
    assert sorted(curve.iteration.unique()) == [0, 10, 20, 30]
    assert set(curve[curve.iteration == 0].split) == {"Test", "IC", "IC2", "IW"}  # no train yet
    assert set(curve[curve.iteration == 30].split) == {"train", "Test", "IC", "IC2", "IW"}
    final = pd.read_parquet(tmp_path / "final.parquet")
    assert (final.iteration == 30).all() and len(final) == 5
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["seeds"] == {"run": 0, "init": derive_seed(0, "init"),
                            "train_data": derive_seed(0, "train-data"),
                            "eval_data": derive_seed(0, "eval-data")}
    assert cfg["num_params"] > 0 and cfg["model"]["pe"] == "rope"
    sets = load_batches(tmp_path / "testsets.pt")
    assert set(sets) == {"Test", "IC", "IC2", "IW"} and len(sets["IC"]) == 32


def test_same_seed_same_result_different_seed_different(tmp_path):
    _run(tmp_path / "a")
    _run(tmp_path / "b")
    _run(tmp_path / "c", seed=1)
    a, b, c = (io.load_torch(tmp_path / x / "model.pt") for x in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["out.weight"], c["out.weight"])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a/curve.parquet"),
                                  pd.read_parquet(tmp_path / "b/curve.parquet"))


def test_run_seeds_are_independent_streams():
    s = RunSeeds.from_run_seed(5)
    assert len({s.init, s.train_data, s.eval_data}) == 3


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_optimizers_reduce_the_loss(tmp_path, optimizer):
    lr = 0.5 if optimizer == "sgd" else 3e-3
    curve = _run(tmp_path, train_cfg=TrainConfig(optimizer=optimizer, lr=lr, batch_size=32,
                                                  iterations=120, eval_every=60,
                                                  checkpoint_every=60))
    test = curve[curve.split == "Test"].set_index("iteration").loss
    assert test[120] < test[0] - 0.3


def test_bad_optimizer_is_named():
    with pytest.raises(ValueError, match="optimizer='lion'"):
        TrainConfig(optimizer="lion")
