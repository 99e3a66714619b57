"""Kill-and-resume: a training job SIGKILLed midway and rerun ends bit-identical to an
uninterrupted run, and a killed Snakemake job leaves no output that looks complete."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from mmicl import io, paths
from mmicl.data.worlds import make_world, save_world
from mmicl.train import Snapshots

ROOT = Path(__file__).resolve().parents[1]

SPEC = {
    "tier": "test", "run": "resume-test", "seed": 3,
    "params": {
        "K": 64, "L": 32, "D": 16, "N": 8, "B": 4, "p_bursty": 1.0, "p_novel": 0.0, "eps": 0.1,
        "alpha": 0.0, "no_repeats": False, "pe": "ape", "rope_impl": "reference",
        "rope_theta": 10000, "n_layers": 2, "n_heads": 1, "rms_norm": True,
        "mlp_variant": "reference",
    },
    "train": {"optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-6, "momentum": 0.0,
              "batch_size": 16, "iterations": 400, "eval_every": 20, "checkpoint_every": 40},
    "eval": {"test_set_size": 32, "attention_sequences": 8},
    "device": "cpu",
}


def _train_cmd(world, out_dir):
    return [sys.executable, "-m", "mmicl.cli", "train-stage1", "--spec", json.dumps(SPEC),
            "--world", str(world), "--out-dir", str(out_dir), "--threads", "1", "--no-progress"]


@pytest.fixture
def world_file(tmp_path):
    path = tmp_path / "world.parquet"
    save_world(make_world(SPEC["seed"], 64, 32, 16), path)
    return path


def _wait_for_checkpoint(path: Path, proc, min_step: int, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError("training finished before it could be killed; make it longer")
        if path.exists():
            try:
                if io.load_torch(path)["step"] >= min_step:
                    return
            except ValueError:
                pass  # caught mid-rename; try again
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_sigkill_and_rerun_equals_uninterrupted(tmp_path, world_file):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(world_file, reference_dir), check=True, env=env)

    proc = subprocess.Popen(_train_cmd(world_file, killed_dir), env=env)
    _wait_for_checkpoint(paths.resume_checkpoint(killed_dir), proc, min_step=120)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "model.pt").exists()  # nothing that looks complete
    resumed_from = io.load_torch(paths.resume_checkpoint(killed_dir))["step"]
    assert 0 < resumed_from < SPEC["train"]["iterations"]

    rerun = subprocess.run(_train_cmd(world_file, killed_dir), check=True, env=env,
                           capture_output=True, text=True)
    assert f"resuming {killed_dir} from step {resumed_from}" in rerun.stderr

    a = io.load_torch(reference_dir / "model.pt")
    b = io.load_torch(killed_dir / "model.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    pd.testing.assert_frame_equal(pd.read_parquet(reference_dir / "curve.parquet"),
                                  pd.read_parquet(killed_dir / "curve.parquet"))
    # weight snapshots taken before the kill survive in resume.pt and end up identical too
    snaps_a = Snapshots.load(reference_dir / "snapshots.pt")
    snaps_b = Snapshots.load(killed_dir / "snapshots.pt")
    assert snaps_a.iterations == snaps_b.iterations == [0, 100, 200, 300, 400]
    for it in snaps_a.iterations:
        sa, sb = snaps_a.state(it), snaps_b.state(it)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), it
    assert not paths.resume_checkpoint(killed_dir).exists()


def test_resume_checkpoint_of_another_config_is_ignored(tmp_path, world_file):
    out = tmp_path / "run"
    out.mkdir()
    io.save_torch({"fingerprint": "something-else", "step": 5}, paths.resume_checkpoint(out))
    spec = json.loads(json.dumps(SPEC))
    spec["train"].update(iterations=20, eval_every=10, checkpoint_every=10)
    cmd = _train_cmd(world_file, out)
    cmd[cmd.index("--spec") + 1] = json.dumps(spec)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "belongs to a different configuration" in proc.stderr
    curve = pd.read_parquet(out / "curve.parquet")
    assert curve.iteration.min() == 0 and curve.iteration.max() == 20


def test_corrupt_checkpoint_is_named(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=str(bad)):
        io.load_torch(bad)


@pytest.mark.slow
def test_snakemake_job_killed_midway_leaves_no_complete_output_and_resumes(tmp_path):
    """SIGKILL the whole Snakemake process group while a training job runs: no declared output
    survives, and the rerun resumes from resume.pt instead of starting over."""
    import yaml

    from mmicl import config as mcfg

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tier"] = "smoke"
    cfg["tiers"]["smoke"]["train"].update(iterations=600, eval_every=50, checkpoint_every=50)
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    tier = mcfg.tier_config(cfg)
    run = mcfg.run_id(tier["stage1"], tier["stage1"])
    cohort = next(c for c in mcfg.stage1_cohorts(tier) if (run, 0) in c.members)
    assert cohort.members[0] == (run, 0)  # trained first: the kill hits it mid-training
    run_dir = tmp_path / paths.stage1_dir("results", "smoke", run, 0)
    target = paths.stage1_file("results", "smoke", run, 0, "model.pt")
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(cfg_path), "--cores", "1", target]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        _wait_for_checkpoint(paths.resume_checkpoint(run_dir), proc, min_step=100, timeout=300)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for name in paths.RUN_FILES:
        assert not (run_dir / name).exists(), name
    step = io.load_torch(paths.resume_checkpoint(run_dir))["step"]

    # A SIGKILLed Snakemake cannot release its lock: the user unlocks, then reruns as usual.
    subprocess.run(cmd + ["--unlock"], env=env, check=True, capture_output=True,
                   stdin=subprocess.DEVNULL)
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                           stdin=subprocess.DEVNULL)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    # The job is the run's cohort; its log names the member it resumed.
    log = (tmp_path / paths.log("results", "smoke", "stage1", "cohorts", cohort.name)).read_text()
    assert re.search(rf"resuming .*{re.escape(run)}.* from step {step}\b", log), log[-2000:]
    curve = pd.read_parquet(run_dir / "curve.parquet")
    assert curve.iteration.max() == 600
