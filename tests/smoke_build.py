"""The smoke tier built once per test session (the `smoke_build` fixture, conftest.py), from a
copy of the repository, for every test that needs a built tier: the end-to-end checks
(test_workflow), the rerun checks (test_reruns, on a copy of the built folder, since they edit
code and config) and the Slurm comparison (test_slurm). One build instead of one per module.

The copy is what tests edit (a figure module, the training code), never the checkout; its
`src/` comes first on PYTHONPATH, as the Snakefile and its jobs do.

The build starts in the background when the session starts (`Background`, from conftest.py) and the
tests that need it run last, so the unit tests use the cores the build leaves idle (process
starts, Snakemake's scheduling) instead of waiting for it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mmicl.vlm.plan import missing_extra

ROOT = Path(__file__).resolve().parents[1]
# the whole smoke tier on 2 cores, beside the unit tests (the Section-5 chain on tiny models adds
# ~2 CPU-minutes); counted from the start of the session
BUILD_SECONDS = 1200 + (0 if missing_extra() else 300)


def copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".snakemake", "results")
    for name in ("src", "workflow", "envs", "slurm"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("Snakefile", "config.yaml", "README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, dest / name)
    return dest


@dataclass
class Build:
    repo: Path  # the repository copy
    work: Path  # the working directory holding results/ and .snakemake/

    def command(self, *args, configfile=None, config=(), tier="smoke") -> list[str]:
        """snakemake <args> on the copy; --config (which takes every following word) last."""
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(self.repo / "Snakefile"),
               "--directory", str(self.work), *args]
        if configfile:
            cmd += ["--configfile", str(configfile)]
        return cmd + ["--config", f"tier={tier}", *config]

    @property
    def env(self) -> dict:
        return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(self.repo / "src")}

    def run(self, *args, check=True, configfile=None, config=(), tier="smoke", timeout=900):
        cmd = self.command(*args, configfile=configfile, config=config, tier=tier)
        proc = subprocess.run(cmd, cwd=self.work, capture_output=True, text=True,
                              timeout=timeout, env=self.env, stdin=subprocess.DEVNULL,
                              check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n"
                                 f"{proc.stderr[-4000:]}")
        return proc

    def clone(self, dest: Path) -> Build:
        """The built folder copied (results and Snakemake's records, mtimes kept), same repo."""
        shutil.copytree(self.work, dest, symlinks=True,
                        ignore=shutil.ignore_patterns("locks", "incomplete"))
        return Build(self.repo, dest)


class Background:
    """Copies the repository under `base` and builds every target of the smoke tier in a
    background process; `wait()` returns the Build."""

    def __init__(self, base: Path):
        self.build = Build(copy_repo(base / "repo"), base / "work")
        self.build.work.mkdir()
        self.log = base / "snakemake.log"
        self.started = time.monotonic()
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(self.build.command("--cores", "2"), cwd=self.build.work,
                                         env=self.build.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, text=True)
        self.error: str | None = None

    def wait(self) -> Build:
        if self.proc.returncode is None:
            left = BUILD_SECONDS - (time.monotonic() - self.started)
            try:
                self.proc.wait(timeout=max(1.0, left))
            except subprocess.TimeoutExpired:
                self.stop()
                self.error = f"the smoke build took more than {BUILD_SECONDS} s"
            if self.proc.returncode != 0 and self.error is None:
                self.error = f"the smoke build failed (exit {self.proc.returncode})"
        if self.error:
            raise AssertionError(f"{self.error}:\n{self.log.read_text()[-6000:]}")
        return self.build

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
