"""Truncated or corrupted intermediate files are detected at load, with the file named."""

import pandas as pd
import pytest
import torch

from mmicl import io
from mmicl.cli import main
from mmicl.train.outputs import Snapshots


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_parquet_is_named(tmp_path):
    path = tmp_path / "final.parquet"
    io.write_parquet(pd.DataFrame({"accuracy": [0.5] * 100, "split": ["IC"] * 100}), path)
    truncate(path)
    with pytest.raises(ValueError, match="final.parquet: not a readable Parquet file"):
        io.read_parquet(path)


def test_collect_refuses_a_corrupt_run_table(tmp_path):
    from helpers import stage1, tier

    run = tmp_path / "run"
    io.write_json({"spec": stage1(tier("smoke")).to_dict()}, run / "config.json")
    path = run / "final.parquet"
    io.write_parquet(pd.DataFrame({"accuracy": [0.5]}), path)
    path.write_bytes(b"PAR1 garbage")
    with pytest.raises(ValueError, match=str(path)):
        main(["collect", "--out", str(tmp_path / "t.parquet"), str(path)])
    assert not (tmp_path / "t.parquet").exists()


@pytest.mark.parametrize("keep", [0.0, 0.3, 0.9])
def test_truncated_checkpoints_are_named(tmp_path, keep):
    snaps = Snapshots()
    snaps.add(torch.nn.Linear(64, 64), 0)
    path = tmp_path / "snapshots.pt"
    io.save_torch(snaps.to_dict(), path)
    truncate(path, keep)
    with pytest.raises(ValueError, match="snapshots.pt"):
        Snapshots.load(path)
    model = tmp_path / "model.pt"
    io.save_torch(torch.nn.Linear(64, 64).state_dict(), model)
    truncate(model, keep)
    with pytest.raises(ValueError, match="model.pt: not a readable PyTorch file"):
        io.load_torch(model)


def test_truncated_test_sets_are_named(tmp_path):
    from mmicl.data.sequences import SequenceSpec, load_batches, make_test_sets, save_batches
    from mmicl.data.worlds import make_world

    sets = make_test_sets(make_world(0, 64, 32, 8), SequenceSpec(), 16, seed=0)
    path = tmp_path / "testsets.pt"
    save_batches(sets, path)
    truncate(path)
    with pytest.raises(ValueError, match="testsets.pt"):
        load_batches(path)


def test_unreadable_run_config_is_named(tmp_path):
    from mmicl.analysis.runs import read_spec

    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not a readable JSON file"):
        read_spec(tmp_path)
    io.write_json({"spec": {"stage": 1}}, tmp_path / "config.json")
    with pytest.raises(ValueError, match="config.json: missing key 'seed'"):
        read_spec(tmp_path)
