"""Weight snapshots for the indicator step: schedule, storage of frozen parts, equality with the
final model, and the indicator table computed from them."""

import pandas as pd
import pytest
import torch

from mmicl import io
from mmicl.config import TrainConfig
from mmicl.data.sequences import SequenceSpec
from mmicl.data.worlds import make_world
from mmicl.indicators import Layout, model_indicators, snapshot_indicators
from mmicl.models.decoder import DecoderConfig
from mmicl.runs import load_run
from mmicl.train import Snapshots, train_run


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_snapshot_schedule_by_hand():
    cfg = TrainConfig(iterations=100, eval_every=10, checkpoint_every=50, snapshot_every=30,
                      snapshot_dense_every=10, snapshot_dense_until=25)
    assert cfg.snapshot_iterations() == [0, 10, 20, 30, 60, 90, 100]
    assert TrainConfig(iterations=7, snapshot_every=5).snapshot_iterations() == [0, 5, 7]


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
    out = tmp_path_factory.mktemp("run")
    params = {"K": 64, "L": 32, "D": 16, "N": 8, "B": 4, "p_bursty": 1.0, "p_novel": 0.0,
              "eps": 0.1, "alpha": 0.0, "no_repeats": False, "pe": "rope",
              "rope_impl": "reference", "rope_theta": 10000, "n_layers": 2, "n_heads": 2,
              "rms_norm": True, "mlp_variant": "reference"}
    train_run(make_world(0, 64, 32, 16), SequenceSpec(B=4, eps=0.1),
              DecoderConfig(content_dim=16, n_labels=32, pe="rope", n_heads=2),
              TrainConfig(batch_size=16, iterations=30, eval_every=10, checkpoint_every=10,
                          snapshot_every=10, snapshot_dense_every=5, snapshot_dense_until=10),
              out, seed=0, test_set_size=40, attention_sequences=4, progress=False,
              meta={"run": "t", "seed": 0, "params": params})
    return out


def test_final_snapshot_is_the_saved_model(trained):
    snaps = Snapshots.load(trained / "snapshots.pt")
    assert snaps.iterations == [0, 5, 10, 20, 30]
    final, model = snaps.state(30), io.load_torch(trained / "model.pt")
    assert final.keys() == model.keys()
    assert all(torch.equal(final[k], model[k]) for k in model)
    assert not torch.equal(snaps.state(0)["out.weight"], model["out.weight"])


def test_indicator_table_from_snapshots(trained):
    run = load_run(trained)
    assert run.family == "unimodal" and run.layout == Layout("unimodal", 8)
    snaps = Snapshots.load(trained / "snapshots.pt")
    table = snapshot_indicators(run.model, ((it, snaps.state(it)) for it in snaps.iterations),
                                run.test_sets, run.layout, run.modulus)
    assert sorted(table.iteration.unique()) == snaps.iterations
    # 2 layers x 2 heads x 7 unimodal head scores + CLA per snapshot
    assert (table.groupby("iteration").size() == 2 * 2 * 7 + 1).all()
    # accuracy columns at the last snapshot equal the run's own final evaluation
    final = pd.read_parquet(trained / "final.parquet").set_index("split").accuracy
    last = table[table.iteration == 30].iloc[0]
    for split in ("IC", "IW", "Test", "IC2"):
        assert last[f"acc_{split}"] == pytest.approx(final[split], abs=1e-9)
    # indicator values at the last snapshot equal those of model.pt
    fresh = load_run(trained)
    scores, cla = model_indicators(fresh.model, fresh.test_sets["IC"], fresh.layout)
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
