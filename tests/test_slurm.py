"""The workflow on a real Slurm cluster (.ci/slurm-up.sh): the smoke tier end to end through the
Slurm executor, and a training job cancelled by Slurm (preemption) that the profile's retries
resubmit, which resumes and ends bit-identical to an uninterrupted local run.

Every cluster test skips when `sbatch` is missing or `sinfo` shows no idle (or mixed) node, and
fails instead when MMICL_REQUIRE_SLURM=1 (set by .ci/run after a successful bring-up). Snakemake
always runs under `timeout -k 10 ...`: its first SIGTERM only makes it wait for running jobs.
Slurm jobs a test submitted are cancelled when it ends, whatever happened."""

import functools
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from mmicl import plan
from helpers import assert_same_outputs
from mmicl import io, paths

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
USER_PROFILE = ROOT / "slurm" / "config.yaml"
CI_PROFILE = ROOT / ".ci" / "slurm-profile"
# Keys the CI profile adds to the user-facing one (tests/test_slurm.py keeps the rest equal).
CI_ONLY_KEYS = {
    "slurm-status-command",
    "slurm-no-account",
    "slurm-init-seconds-before-status-checks",
    "slurm-keep-successful-logs",
    "seconds-between-status-checks",
}
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")


@functools.lru_cache(maxsize=None)
def _usable_node():
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "sbatch/sinfo not on PATH (run .ci/slurm-up.sh as root)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                                timeout=15).stdout.split()
    except (subprocess.SubprocessError, OSError) as err:  # no controller: sinfo hangs ~10 s
        return f"sinfo failed: {err}"
    if not {"idle", "mixed"} & set(states):
        return f"no idle Slurm node (sinfo states: {states or 'none'}; run .ci/slurm-up.sh)"
    return None


def _need_cluster():
    """Skip without a usable cluster; fail instead when CI brought one up (.ci/run sets
    MMICL_REQUIRE_SLURM=1 after a successful .ci/slurm-up.sh)."""
    reason = _usable_node()
    if reason and os.environ.get("MMICL_REQUIRE_SLURM") == "1":
        pytest.fail(f"MMICL_REQUIRE_SLURM=1 but {reason}")
    if reason:
        pytest.skip(reason)


SLURM_TARGETS = ("fig2a", "table2")


@pytest.fixture
def cluster():
    _need_cluster()


def _env():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The workflow's own placement mechanism (common.smk); `debug` is the test cluster's partition.
    env.setdefault("MMICL_SLURM_PARTITION", "debug")
    return env


def _snakemake_cmd(workdir, configfile, *args, seconds, profile=True):
    cmd = ["timeout", "-k", "10", str(seconds), sys.executable, "-m", "snakemake",
           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile)]
    if profile:
        cmd += ["--profile", str(CI_PROFILE)]
    return cmd + list(args)


def _run(cmd, log: Path, seconds):
    """Run to completion, output to `log` (read while it runs by the preemption test)."""
    with open(log, "a") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(),
                              stdin=subprocess.DEVNULL, timeout=seconds + 30)
    return proc.returncode


def _slurm_ids(*logs):
    ids = set()
    for log in logs:
        if log.exists():
            ids |= set(SUBMITTED.findall(log.read_text()))
    return ids


def _cancel(ids):
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", *sorted(ids)], capture_output=True, timeout=30)


def _tail(log: Path, n=4000):
    return log.read_text()[-n:] if log.exists() else "(no output)"


def _smoke_config(tmp_path, **train):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tier"] = "smoke"
    cfg["tiers"]["smoke"]["train"].update(train)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


# ---------------------------------------------------------------------------------------------
def test_ci_profile_is_the_user_profile_plus_ci_keys():
    """No drift: every setting of slurm/config.yaml is in the CI profile with the same value; the
    CI profile only adds the keys a test cluster without slurmdbd needs."""
    user = yaml.safe_load(USER_PROFILE.read_text())
    ci = yaml.safe_load((CI_PROFILE / "config.yaml").read_text())
    for key, value in user.items():
        assert ci.get(key) == value, f"{key}: slurm/config.yaml has {value!r}, CI {ci.get(key)!r}"
    assert set(ci) - set(user) == CI_ONLY_KEYS
    assert ci["slurm-status-command"] == "squeue"


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_tier_end_to_end_on_slurm(cluster, smoke_build, tmp_path):
    """Two figures of the smoke tier through the Slurm executor, which between them run every
    kind of job chain: Stage-1 cohorts of several runs (fig2a); worlds of both modalities,
    Stage-2 training with its parents, the indicators computed in the training jobs, and the
    interventions (table2). Every job that is not local went through Slurm (one kept Slurm log
    per job). That every figure builds is the local end-to-end test's job (test_workflow)."""
    configfile = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.yaml", configfile)
    log = tmp_path / "snakemake.out"
    seconds = 1200
    start = time.time()
    try:
        rc = _run(_snakemake_cmd(tmp_path, configfile, *SLURM_TARGETS, "--config", "tier=smoke",
                                 seconds=seconds), log, seconds)
    finally:
        _cancel(_slurm_ids(log))
    elapsed = time.time() - start
    assert rc == 0, f"snakemake on Slurm failed (rc {rc}, {elapsed:.0f} s):\n{_tail(log)}"
    print(f"smoke tier {' '.join(SLURM_TARGETS)} on Slurm: {elapsed:.0f} s")

    results = tmp_path / "results"
    for name in SLURM_TARGETS:
        for ext in ("pdf", "png"):
            path = results / "smoke" / "figures" / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path

    # Jobs really ran on Slurm: one Slurm job id per submission, one kept log per Slurm job, and
    # every Stage-1 cohort these figures need (one job training several runs) has its own log.
    ids = _slurm_ids(log)
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    kept = {p.stem for p in slurm_logs.rglob("*.log")}
    assert ids and ids <= kept, sorted(ids - kept)[:5]
    tier = plan.tier_config({**yaml.safe_load(configfile.read_text()), "tier": "smoke"})
    needed = {s.key for name in SLURM_TARGETS for s in plan.needed_runs(tier, name)}
    models = list((results / "smoke" / "stage1").glob("*/seed=*/model.pt"))
    assert len(models) == sum(1 for s in plan.all_runs(tier) if s.stage == 1 and s.key in needed)
    cohort_logs = list(slurm_logs.glob("rule_train_stage1_*/**/*.log"))
    stage1_cohorts = [c for c in plan.plan_cohorts(tier)
                      if c.stage == 1 and c.members[0].key in needed]
    assert len(cohort_logs) == len(stage1_cohorts) < len(models)
    for path in cohort_logs:
        text = path.read_text()
        assert "rule train_stage1_" in text and "Finished jobid" in text, path
    assert list(slurm_logs.glob("rule_train_stage2_*/**/*.log"))
    # the same numbers as the session's local build of the tier (smoke_build): a build from
    # scratch is reproducible, whichever executor ran it (Stage 1, Stage 2 with interventions,
    # indicators)
    for name in SLURM_TARGETS:
        table = Path("results", "smoke", "tables", f"{name}.parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / table),
                                      pd.read_parquet(smoke_build.work / table),
                                      check_exact=False, rtol=1e-6, obj=name)


# ---------------------------------------------------------------------------------------------
# Long enough that the cancel lands mid-training (the first resume checkpoint is at step 50 of
# 400, about 8 s before the end on one CPU thread), short enough to keep CI quick.
PREEMPT_TRAIN = dict(iterations=400, eval_every=100, checkpoint_every=50, snapshot_every=100)


@pytest.fixture(scope="module")
def preempt_reference(tmp_path_factory):
    """The Stage-1 run of the smoke tier, trained longer, uninterrupted and locally."""
    _need_cluster()
    tmp = tmp_path_factory.mktemp("reference")
    cfg, configfile = _smoke_config(tmp, **PREEMPT_TRAIN)
    tier = plan.tier_config(cfg)
    spec = plan.stage1_spec(tier, tier["stage1"], 0)
    target = paths.run_file("results", spec, "model.pt")
    log = tmp / "snakemake.out"
    rc = _run(_snakemake_cmd(tmp, configfile, "--cores", "1", target, seconds=300,
                             profile=False), log, 300)
    assert rc == 0, _tail(log)
    return spec, target, tmp / paths.run_dir("results", spec)


def _train_ids(log: Path):
    """Slurm job ids of the Stage-1 cohort submissions, in submission order."""
    return [m.group(1) for m in re.finditer(
        r"SLURM jobid (\d+) \(log: [^)]*/rule_train_stage1_[^/]+/", log.read_text())]


def _wait_for_checkpoint(resume: Path, min_step, deadline, log: Path):
    while time.time() < deadline:
        if resume.exists():
            try:
                step = io.load_torch(resume)["step"]
            except ValueError:
                step = -1  # caught mid-rename
            if step >= min_step:
                return step
        if (resume.parent / "model.pt").exists():
            raise AssertionError("training finished before it was cancelled; make it longer")
        time.sleep(0.05)
    raise AssertionError(f"no resume checkpoint at step >= {min_step}:\n{_tail(log)}")


@pytest.mark.slurm
@pytest.mark.slow
def test_training_cancelled_by_slurm_is_retried_and_resumes_bit_identical(cluster,
                                                                         preempt_reference,
                                                                         tmp_path):
    """`scancel` a Stage-1 training job after its first resume checkpoint (what preemption does):
    the profile's retries resubmit it within the same Snakemake run, it resumes from resume.pt,
    and the result equals the uninterrupted local run bit for bit. (A run that gives up instead,
    `--retries 0`, leaves no output that looks complete and resumes on `--rerun-incomplete`:
    test_resume's killed-Snakemake test covers that path, without Slurm.)"""
    spec, target, reference_dir = preempt_reference
    cfg, configfile = _smoke_config(tmp_path, **PREEMPT_TRAIN)
    cohort = next(c for c in plan.plan_cohorts(plan.tier_config(cfg))
                  if spec.key in {m.key for m in c.members})
    assert cohort.members[0].key == spec.key  # trained first: the cancel hits it mid-training
    run_dir = tmp_path / paths.run_dir("results", spec)
    resume = paths.resume_checkpoint(run_dir)
    log = tmp_path / "snakemake.out"
    seconds = 240
    first = _snakemake_cmd(tmp_path, configfile, target, seconds=seconds)  # the profile's retries
    out_file = open(log, "w")
    proc = subprocess.Popen(first, stdout=out_file, stderr=subprocess.STDOUT, env=_env(),
                            stdin=subprocess.DEVNULL)
    try:
        step = _wait_for_checkpoint(resume, PREEMPT_TRAIN["checkpoint_every"],
                                    time.time() + seconds - 30, log)
        train_ids = _train_ids(log)
        assert len(train_ids) == 1, _tail(log)
        subprocess.run(["scancel", train_ids[-1]], check=True, timeout=30)
        rc = proc.wait(timeout=seconds + 30)
        assert rc == 0, _tail(log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out_file.close()
        _cancel(_slurm_ids(log))

    out = log.read_text()
    resubmitted = _train_ids(log)
    assert len(resubmitted) == 2 and resubmitted[0] == train_ids[0], resubmitted
    assert re.search(rf"SLURM-job '{train_ids[-1]}' failed, SLURM status is: 'CANCELLED", out)
    job_log = (tmp_path / paths.log("results", "smoke", "stage1", "cohorts", cohort.name)).read_text()
    resumed = re.search(r"resuming (.+) from step (\d+)", job_log)
    assert resumed, job_log[-2000:]
    assert step <= int(resumed.group(2)) < PREEMPT_TRAIN["iterations"]
    assert not resume.exists()

    assert_same_outputs(reference_dir, run_dir)
