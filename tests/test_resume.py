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

from helpers import assert_same_outputs, inputs, stage1, tier
from mmicl import io, paths
from mmicl.train.cohort import Entry
from mmicl.train.outputs import Snapshots

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"batch_size": 16, "iterations": 200, "eval_every": 20, "checkpoint_every": 20,
         "snapshot_every": 50}


def _entry(tmp_path, out_dir, **train):
    t = tier("smoke", results=tmp_path / "results", stage1={"K": 64, "pe": "ape"},
             train={**TRAIN, **train}, eval={"test_set_size": 32, "attention_sequences": 8})
    spec = stage1(t, 3)
    return Entry(spec, str(out_dir), inputs(t, spec)).to_dict()


def _train_cmd(entry):
    return [sys.executable, "-m", "mmicl.cli", "train", "--members", json.dumps([entry]),
            "--threads", "1", "--no-progress"]


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
def test_sigkill_and_rerun_equals_uninterrupted(tmp_path):
    reference_dir, killed_dir = tmp_path / "reference", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(_entry(tmp_path, reference_dir)), check=True, env=env)

    proc = subprocess.Popen(_train_cmd(_entry(tmp_path, killed_dir)), env=env)
    _wait_for_checkpoint(paths.resume_checkpoint(killed_dir), proc, min_step=60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_dir / "model.pt").exists()  # nothing that looks complete
    resumed_from = io.load_torch(paths.resume_checkpoint(killed_dir))["step"]
    assert 0 < resumed_from < TRAIN["iterations"]

    rerun = subprocess.run(_train_cmd(_entry(tmp_path, killed_dir)), check=True, env=env,
                           capture_output=True, text=True)
    assert f"from step {resumed_from} ({paths.resume_checkpoint(killed_dir)})" in rerun.stderr

    assert_same_outputs(reference_dir, killed_dir)
    # weight snapshots taken before the kill survive in resume.pt and end up identical too
    snaps_a = Snapshots.load(reference_dir / "snapshots.pt")
    snaps_b = Snapshots.load(killed_dir / "snapshots.pt")
    assert snaps_a.iterations == snaps_b.iterations == [0, 50, 100, 150, 200]
    for it in snaps_a.iterations:
        sa, sb = snaps_a.state(it), snaps_b.state(it)
        assert all(torch.equal(sa[k], sb[k]) for k in sa), it
    assert not paths.resume_checkpoint(killed_dir).exists()


def test_resume_checkpoint_of_another_config_is_ignored(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    io.save_torch({"fingerprint": "something-else", "step": 5}, paths.resume_checkpoint(out))
    entry = _entry(tmp_path, out, iterations=20, eval_every=10, checkpoint_every=10,
                   snapshot_every=10)
    proc = subprocess.run(_train_cmd(entry), capture_output=True, text=True, check=True)
    assert "belongs to another configuration" in proc.stderr
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

    from helpers import base_config
    from mmicl import plan

    cfg = base_config()
    cfg["tier"] = "smoke"
    cfg["tiers"]["smoke"]["train"].update(iterations=300, eval_every=50, checkpoint_every=50)
    cfg["tiers"]["smoke"]["cohorts"] = {"size": 1}  # the job trains this run only
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    t = plan.tier_config(cfg)
    spec = stage1(t, 0)
    cohort = next(c for c in plan.plan_cohorts(t) if spec.key in {m.key for m in c.members})
    assert cohort.members[0].key == spec.key  # trained first: the kill hits it mid-training
    run, run_dir = spec.run, tmp_path / paths.run_dir("results", spec)
    target = paths.run_file("results", spec, "model.pt")
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
    assert curve.iteration.max() == 300
