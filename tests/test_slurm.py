"""The workflow on a real Slurm cluster (.ci/slurm-up.sh): the smoke tier end to end through the
Slurm executor, and a training job cancelled by Slurm (preemption) that the profile's retries
resubmit, which resumes and ends bit-identical to an uninterrupted local run.

Both Snakemake runs start in the background when the session starts (slurm_runs.py, conftest.py)
and these tests, which run last, check what they left. Every cluster test skips when `sbatch` is
missing or `sinfo` shows no idle (or mixed) node, and fails instead when MMICL_REQUIRE_SLURM=1
(set by .ci/run after a successful bring-up)."""

import os
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from helpers import assert_same_outputs
from mmicl import paths, plan
from slurm_runs import (CI_PROFILE, PREEMPT_TRAIN, SLURM_TARGETS, slurm_ids, tail, train_ids,
                        usable_node)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
USER_PROFILE = ROOT / "slurm" / "config.yaml"
# Keys the CI profile adds to the user-facing one (tests/test_slurm.py keeps the rest equal).
CI_ONLY_KEYS = {
    "slurm-status-command",
    "slurm-no-account",
    "slurm-init-seconds-before-status-checks",
    "slurm-keep-successful-logs",
}


@pytest.fixture
def cluster():
    """Skip without a usable cluster; fail instead when CI brought one up (.ci/run sets
    MMICL_REQUIRE_SLURM=1 after a successful .ci/slurm-up.sh)."""
    reason = usable_node()
    if reason and os.environ.get("MMICL_REQUIRE_SLURM") == "1":
        pytest.fail(f"MMICL_REQUIRE_SLURM=1 but {reason}")
    if reason:
        pytest.skip(reason)


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
def test_smoke_tier_end_to_end_on_slurm(cluster, slurm_end_to_end, smoke_build):
    """Two figures of the smoke tier through the Slurm executor, which between them run every
    kind of job chain: Stage-1 cohorts of several runs (fig2a); worlds of both modalities,
    Stage-2 training with its parents, the indicators computed in the training jobs, and the
    interventions (table2). Every job that is not local went through Slurm (one kept Slurm log
    per job). That every figure builds is the local end-to-end test's job (test_workflow)."""
    run = slurm_end_to_end
    tmp_path, configfile, log = run.folder, run.configfile, run.log
    assert run.rc == 0, (
        f"Snakemake on Slurm failed (rc {run.rc}, {run.elapsed:.0f} s):\n{tail(log)}")
    print(f"smoke tier {' '.join(SLURM_TARGETS)} on Slurm: {run.elapsed:.0f} s, in the background")

    results = tmp_path / "results"
    for name in SLURM_TARGETS:
        for ext in ("pdf", "png"):
            path = results / "smoke" / "figures" / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path

    # Jobs really ran on Slurm: one Slurm job id per submission, one kept log per Slurm job, and
    # every Stage-1 cohort these figures need (one job training several runs) has its own log.
    ids = slurm_ids(log)
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
@pytest.mark.slurm
@pytest.mark.slow
def test_training_cancelled_by_slurm_is_retried_and_resumes_bit_identical(cluster,
                                                                         slurm_preemption):
    """`scancel` a Stage-1 training job after its first resume checkpoint (what preemption does):
    the profile's retries resubmit it within the same Snakemake run, it resumes from resume.pt,
    and the result equals the uninterrupted local run bit for bit. (A run that gives up instead,
    `--retries 0`, leaves no output that looks complete and resumes on `--rerun-incomplete`:
    test_resume's killed-Snakemake test covers that path, without Slurm.)"""
    result = slurm_preemption.result
    log, run_dir, cohort = result.log, result.run_dir, result.cohort
    assert cohort.members[0].key == result.spec.key  # trained first: the cancel hits it mid-run
    assert len(result.cancelled) == 1, tail(log)  # one training job when the cancel came
    assert result.rc == 0, tail(log)

    out = log.read_text()
    resubmitted = train_ids(log)
    assert len(resubmitted) == 2 and resubmitted[0] == result.cancelled[0], resubmitted
    assert re.search(rf"SLURM-job '{result.cancelled[0]}' failed, SLURM status is: 'CANCELLED",
                     out)
    job_log = (result.log.parent / paths.log("results", "smoke", "stage1", "cohorts",
                                             cohort.name)).read_text()
    resumed = re.search(r"resuming (.+) from step (\d+)", job_log)
    assert resumed, job_log[-2000:]
    assert result.step <= int(resumed.group(2)) < PREEMPT_TRAIN["iterations"]
    assert not paths.resume_checkpoint(run_dir).exists()

    assert_same_outputs(result.reference_dir, run_dir)
