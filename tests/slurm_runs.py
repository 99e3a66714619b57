"""The two Snakemake runs of the Slurm tests (test_slurm.py), started in the background when the
session starts (conftest.py), beside the smoke build and the unit tests; the tests that check
them run last.

Most of a run on the test cluster is waiting: the slurm executor plugin (2.8) checks job states
1 s after a check that saw a job finish and waits 10 s longer after each check that saw none (a
back-off that `seconds-between-status-checks` does not shorten), so each level of the job chain
costs about 12 s however short its jobs. In the foreground, the Slurm tests took 349 s of an
891 s test session (benchmarks/README.md, "CI").

- `EndToEnd`: smoke-tier figures through the Slurm executor, from an empty folder.
- `Preemption`: a Stage-1 run trained locally and uninterrupted (the reference), then the same
  run on Slurm, whose training job is `scancel`led after its first resume checkpoint (what
  preemption does) and retried by the profile.

Snakemake always runs under `timeout -k 10 ...`: its first SIGTERM only makes it wait for
running jobs. Every Slurm job a run submitted is cancelled when it ends, whatever happened."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mmicl import io, paths, plan

ROOT = Path(__file__).resolve().parents[1]
CI_PROFILE = ROOT / ".ci" / "slurm-profile"
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+)")
# fig2a: Stage-1 cohorts of several runs; table2: worlds of both modalities, Stage-2 training
# with its parents, the indicators computed in the training jobs, and the interventions
SLURM_TARGETS = ("fig2a", "table2")
# Long enough that the cancel lands mid-training (the first resume checkpoint is at step 50 of
# 400, several seconds before the end on one CPU thread), short enough to keep CI quick.
PREEMPT_TRAIN = dict(iterations=400, eval_every=100, checkpoint_every=50, snapshot_every=100)
# caps, counted from the start of the session, for runs that share 2 cores with everything else
END_TO_END_SECONDS = 1200
PREEMPTION_SECONDS = 900


@functools.lru_cache(maxsize=None)
def usable_node() -> str | None:
    """None when a Slurm node can take jobs, else why not."""
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


def env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The workflow's own placement mechanism (common.smk); `debug` is the test cluster's partition.
    env.setdefault("MMICL_SLURM_PARTITION", "debug")
    return env


def snakemake_cmd(workdir, configfile, *args, seconds, profile=True) -> list[str]:
    cmd = ["timeout", "-k", "10", str(int(seconds)), sys.executable, "-m", "snakemake",
           "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(configfile)]
    if profile:
        cmd += ["--profile", str(CI_PROFILE)]
    return cmd + list(args)


def slurm_ids(*logs: Path) -> set[str]:
    ids = set()
    for log in logs:
        if log.exists():
            ids |= set(SUBMITTED.findall(log.read_text()))
    return ids


def cancel(ids) -> None:
    if ids and shutil.which("scancel"):
        subprocess.run(["scancel", *sorted(ids)], capture_output=True, timeout=30)


def tail(log: Path, n=4000) -> str:
    return log.read_text()[-n:] if log.exists() else "(no output)"


def smoke_config(folder: Path, **train) -> tuple[dict, Path]:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tier"] = "smoke"
    cfg["tiers"]["smoke"]["train"].update(train)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return cfg, path


def train_ids(log: Path) -> list[str]:
    """Slurm job ids of the Stage-1 cohort submissions, in submission order."""
    return [m.group(1) for m in re.finditer(
        r"SLURM jobid (\d+) \(log: [^)]*/rule_train_stage1_[^/]+/", log.read_text())]


def wait_for_checkpoint(resume: Path, min_step, deadline, log: Path) -> int:
    while time.monotonic() < deadline:
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
    raise AssertionError(f"no resume checkpoint at step >= {min_step}:\n{tail(log)}")


class _Background:
    """`_work()` in a thread from construction on; `wait()` re-raises what it raised."""

    seconds: float

    def __init__(self, folder: Path):
        self.folder = folder
        self.started = time.monotonic()
        self.deadline = self.started + self.seconds
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._thread = threading.Thread(target=self._guarded, daemon=True)
        self._thread.start()

    def _guarded(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # handed to the test by wait()
            self.error = exc

    def _popen(self, cmd, log: Path) -> subprocess.Popen:
        if self._stop.is_set():
            raise AssertionError("stopped before it started")
        out = open(log, "a")
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env(),
                                      stdin=subprocess.DEVNULL)
        out.close()  # the child holds its own copy
        return self._proc

    def _left(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def wait(self):
        self._thread.join(timeout=self._left() + 60)
        if self._thread.is_alive():
            self.stop()
            raise AssertionError(f"{type(self).__name__} still running after {self.seconds} s")
        if self.error is not None:
            raise self.error
        return self

    def stop(self) -> None:
        """A session that ends early (-x, Ctrl-C) leaves no Snakemake or Slurm job running."""
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()  # `timeout` passes it on to Snakemake
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        cancel(slurm_ids(*self.folder.rglob("snakemake.out")))


class EndToEnd(_Background):
    """SLURM_TARGETS of the smoke tier through the Slurm executor, from an empty folder."""

    seconds = END_TO_END_SECONDS

    def _work(self) -> None:
        self.configfile = self.folder / "config.yaml"
        shutil.copy(ROOT / "config.yaml", self.configfile)
        self.log = self.folder / "snakemake.out"
        seconds = self._left()
        try:
            proc = self._popen(snakemake_cmd(self.folder, self.configfile, *SLURM_TARGETS,
                                             "--config", "tier=smoke", seconds=seconds), self.log)
            self.rc = proc.wait(timeout=seconds + 30)
        finally:
            cancel(slurm_ids(self.log))
        self.elapsed = time.monotonic() - self.started


@dataclass
class PreemptionResult:
    spec: object
    cohort: object
    reference_dir: Path
    run_dir: Path
    log: Path
    step: int  # the resume checkpoint's step when the job was cancelled
    cancelled: list = field(default_factory=list)  # the training job ids seen at the cancel
    rc: int | None = None


class Preemption(_Background):
    """The reference run locally, then the same run on Slurm, cancelled mid-training."""

    seconds = PREEMPTION_SECONDS

    def _work(self) -> None:
        reference, folder = self.folder / "reference", self.folder / "slurm"
        reference.mkdir()
        folder.mkdir()
        cfg, configfile = smoke_config(reference, **PREEMPT_TRAIN)
        tier = plan.tier_config(cfg)
        spec = plan.stage1_spec(tier, tier["stage1"], 0)
        target = paths.run_file("results", spec, "model.pt")
        log = reference / "snakemake.out"
        rc = self._popen(snakemake_cmd(reference, configfile, "--cores", "1", target,
                                       seconds=self._left(), profile=False),
                         log).wait(timeout=self._left() + 30)
        assert rc == 0, f"the local reference run failed:\n{tail(log)}"

        _, configfile = smoke_config(folder, **PREEMPT_TRAIN)
        cohort = next(c for c in plan.plan_cohorts(tier)
                      if spec.key in {m.key for m in c.members})
        run_dir = folder / paths.run_dir("results", spec)
        log = folder / "snakemake.out"
        self.result = PreemptionResult(spec, cohort, reference / paths.run_dir("results", spec),
                                       run_dir, log, step=-1)
        seconds = self._left()
        proc = self._popen(snakemake_cmd(folder, configfile, target, seconds=seconds), log)
        try:
            self.result.step = wait_for_checkpoint(paths.resume_checkpoint(run_dir),
                                                   PREEMPT_TRAIN["checkpoint_every"],
                                                   self.deadline - 30, log)
            self.result.cancelled = train_ids(log)
            if len(self.result.cancelled) == 1:
                subprocess.run(["scancel", self.result.cancelled[-1]], check=True, timeout=30)
            self.result.rc = proc.wait(timeout=seconds + 30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            cancel(slurm_ids(log))
