"""Weight snapshots for the indicator step: schedule, storage of frozen parts, equality with the
final model, and the indicator table computed from them."""

import pandas as pd
import pytest
import torch

from helpers import stage1, tier, train
from mmicl import io
from mmicl.analysis.indicators import model_indicators, snapshot_indicators
from mmicl.analysis.runs import load_run
from mmicl.specs import TrainConfig
from mmicl.train.outputs import Snapshots


def test_snapshot_schedule_by_hand():
    cfg = TrainConfig(iterations=100, eval_every=10, checkpoint_every=50, snapshot_every=30,
                      snapshot_dense_every=10, snapshot_dense_until=25)
    assert cfg.snapshot_iterations() == [0, 10, 20, 30, 60, 90, 100]
    assert TrainConfig(iterations=7, snapshot_every=5, eval_every=7,
                       checkpoint_every=7).snapshot_iterations() == [0, 5, 7]


@pytest.mark.parametrize("kw, match", [
    ({"snapshot_every": 0}, "snapshot_every"),
    ({"snapshot_dense_every": 5}, "set together"),
    ({"snapshot_dense_until": -1}, "snapshot_dense_until"),
])
def test_bad_snapshot_settings_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.frozen = torch.nn.Linear(3, 3)
        self.free = torch.nn.Linear(3, 2)
        self.frozen.requires_grad_(False)
        self.register_buffer("scale", torch.ones(2))


def test_frozen_parameters_are_stored_once():
    model = Tiny()
    snaps = Snapshots()
    snaps.add(model, 0)
    with torch.no_grad():
        model.free.weight += 1.0
    snaps.add(model, 10)
    assert set(snaps.deltas[10]) == {"free.weight", "free.bias"}
    state = snaps.state(10)
    assert set(state) == set(model.state_dict())
    assert torch.equal(state["free.weight"], model.free.weight)
    assert torch.allclose(snaps.state(0)["free.weight"], model.free.weight - 1.0)
    assert torch.equal(state["frozen.weight"], model.frozen.weight)
    with pytest.raises(KeyError, match="no snapshot at iteration 5"):
        snaps.state(5)
    again = Snapshots.from_dict(snaps.to_dict())
    assert again.iterations == [0, 10]


def test_bad_snapshot_file_is_named(tmp_path):
    path = tmp_path / "snapshots.pt"
    io.save_torch({"iterations": [0]}, path)
    with pytest.raises(ValueError, match="snapshots.pt: not a snapshot file"):
        Snapshots.load(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    t = tier("smoke", results=tmp_path_factory.mktemp("run"),
             stage1={"K": 64, "pe": "rope", "n_heads": 2},
             train={"batch_size": 16, "iterations": 30, "eval_every": 10, "checkpoint_every": 10,
                    "snapshot_every": 10, "snapshot_dense_every": 5, "snapshot_dense_until": 10},
             eval={"test_set_size": 40, "attention_sequences": 4})
    out, _ = train(t, stage1(t))
    return out


def _accuracy(run):
    curve = run.curve()
    evals = curve[curve.split != "train"]
    return {int(it): dict(zip(g.split, g.accuracy)) for it, g in evals.groupby("iteration")}


def test_final_snapshot_is_the_saved_model(trained):
    snaps = Snapshots.load(trained / "snapshots.pt")
    assert snaps.iterations == [0, 5, 10, 20, 30]
    final, model = snaps.state(30), io.load_torch(trained / "model.pt")
    assert final.keys() == model.keys()
    assert all(torch.equal(final[k], model[k]) for k in model)
    assert not torch.equal(snaps.state(0)["out.weight"], model["out.weight"])


def test_indicator_table_from_snapshots(trained):
    run = load_run(trained)
    assert run.family == "unimodal"
    snaps = Snapshots.load(trained / "snapshots.pt")
    table = snapshot_indicators(run.adapter, ((it, snaps.state(it)) for it in snaps.iterations),
                                run.test_sets["IC"], _accuracy(run))
    assert sorted(table.iteration.unique()) == snaps.iterations
    # 2 layers x 2 heads x 7 unimodal head scores + CLA per snapshot
    assert (table.groupby("iteration").size() == 2 * 2 * 7 + 1).all()
    # accuracy columns at each snapshot are the loop's evaluation of those very weights
    from mmicl.analysis.evaluate import evaluate

    final = pd.read_parquet(trained / "final.parquet").set_index("split").accuracy
    last = table[table.iteration == 30].iloc[0]
    for split in ("IC", "IW", "Test", "IC2"):
        assert last[f"acc_{split}"] == final[split]
    run.model.load_state_dict(snaps.state(5))
    at5 = evaluate(run.model, run.test_sets, run.modulus)
    row5 = table[table.iteration == 5].iloc[0]
    assert all(row5[f"acc_{s}"] == at5[s]["accuracy"] for s in at5)
    # indicator values at the last snapshot equal those of model.pt
    fresh = load_run(trained)
    scores, cla = model_indicators(fresh.adapter, fresh.test_sets["IC"])
    got = table[(table.iteration == 30) & (table.indicator == "induction_strength")]
    want = scores["induction_strength"]
    for row in got.itertuples():
        assert row.value == pytest.approx(want[row.layer - 1, row.head].item(), abs=1e-6)
    assert table[(table.iteration == 30) & (table.indicator == "cla")].value.item() == cla


def test_indicators_cli_names_a_foreign_snapshot_file(trained, tmp_path):
    import shutil

    from mmicl.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    snaps = Snapshots.load(run_dir / "snapshots.pt")
    snaps.base = {k: v[..., :1] for k, v in snaps.base.items()}  # wrong shapes
    io.save_torch(snaps.to_dict(), run_dir / "snapshots.pt")
    with pytest.raises(SystemExit, match="snapshots.pt: snapshot does not fit"):
        main(["indicators", "--run-dir", str(run_dir), "--out", str(tmp_path / "i.parquet")])
    assert not (tmp_path / "i.parquet").exists()
