"""The smoke tier built once per test session (the `smoke_build` fixture, conftest.py), from a
copy of the repository, for every test that needs a built tier: the end-to-end checks
(test_workflow), the rerun checks (test_reruns, on a copy of the built folder, since they edit
code and config) and the Slurm comparison (test_slurm). One build instead of one per module.

The copy is what tests edit (a figure module, the training code), never the checkout; its
`src/` comes first on PYTHONPATH, as the Snakefile and its jobs do."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mmicl.vlm.plan import missing_extra

ROOT = Path(__file__).resolve().parents[1]
# the whole smoke tier on 2 cores (the Section-5 chain on tiny models adds ~2 CPU-minutes)
BUILD_SECONDS = 900 + (0 if missing_extra() else 300)


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

    def run(self, *args, check=True, configfile=None, config=(), tier="smoke", timeout=900):
        """snakemake <args> on the copy; --config (which takes every following word) last."""
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(self.repo / "Snakefile"),
               "--directory", str(self.work), *args]
        if configfile:
            cmd += ["--configfile", str(configfile)]
        cmd += ["--config", f"tier={tier}", *config]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(self.repo / "src")}
        proc = subprocess.run(cmd, cwd=self.work, capture_output=True, text=True,
                              timeout=timeout, env=env, stdin=subprocess.DEVNULL,
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


def build(base: Path) -> Build:
    """Copy the repository under `base` and build every target of the smoke tier."""
    result = Build(copy_repo(base / "repo"), base / "work")
    result.work.mkdir()
    result.run("--cores", "2", timeout=BUILD_SECONDS)
    return result
