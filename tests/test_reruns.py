"""Reruns follow the code: from a built state, editing a figure's module rebuilds that figure,
editing the training code stops with the list of stale runs (or retrains / keeps them, as
asked), editing the README reruns nothing, and a new sweep point trains only its new runs.
Runs on the session's smoke build (a copy of the repository and of the built folder), so the
edits never touch the checkout."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmicl import plan

TARGETS = ("fig2a", "fig4a")


@pytest.fixture(scope="module")
def built(smoke_build, tmp_path_factory):
    """The session's smoke build (whole tier, repository copy), its folder copied: these tests
    edit the copy's code and config and train new runs, which other modules must not see."""
    work = smoke_build.clone(tmp_path_factory.mktemp("reruns") / "work")
    return work.repo, work.work, work.run


def _planned(proc) -> dict[str, int]:
    """Jobs per rule of a `-n --quiet rules` dry run ({} when there is nothing to do)."""
    counts = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("total", "job"):
            counts[parts[0]] = int(parts[1])
    return counts


class edited:
    """Append `text` to a file of the repository copy, restore it afterwards."""

    def __init__(self, path: Path, text: str):
        self.path, self.text = path, text

    def __enter__(self):
        self.original = self.path.read_text()
        self.path.write_text(self.original + self.text)

    def __exit__(self, *exc):
        self.path.write_text(self.original)


@pytest.mark.slow
def test_nothing_to_do_and_the_readme_reruns_nothing(built):
    repo, work, run = built
    assert _planned(run(*TARGETS, "-n", "--quiet", "rules")) == {}
    with edited(repo / "README.md", "\nA new paragraph.\n"):
        assert _planned(run(*TARGETS, "-n", "--quiet", "rules")) == {}
    with edited(repo / "src/mmicl/cli.py", "\n# a comment in the CLI\n"):
        assert _planned(run(*TARGETS, "-n", "--quiet", "rules")) == {}


@pytest.mark.slow
def test_editing_a_figure_module_plans_exactly_that_figure(built):
    repo, work, run = built
    with edited(repo / "src/mmicl/figures/fig2a.py", "\n# restyled\n"):
        planned = _planned(run(*TARGETS, "-n", "--quiet", "rules"))
        assert planned == {"figure_fig2a": 1, "fig2a": 1}, planned
        stale = subprocess.run([sys.executable, "-m", "mmicl.cli", "stale", "--config",
                                str(repo / "config.yaml"), "--tier", "smoke"], cwd=work,
                               capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONPATH": str(repo / "src")})
        assert "figure_fig2a: 2 file(s)" in stale.stdout, stale.stdout  # pdf, png
    assert _planned(run(*TARGETS, "-n", "--quiet", "rules")) == {}


@pytest.mark.slow
def test_editing_the_training_code_stops_with_the_stale_runs_or_retrains_them(built):
    repo, work, run = built
    with edited(repo / "src/mmicl/models/decoder.py", "\n# a new attention variant\n"):
        stopped = run(*TARGETS, "-n", check=False)
        text = stopped.stdout + stopped.stderr
        assert stopped.returncode != 0
        assert re.search(r"\d+ trained run\(s\) of tier 'smoke' were made by other training "
                         r"code", text), text[-2000:]
        assert "--config on_code_change=retrain" in text and "on_code_change=keep" in text
        retrain = _planned(run(*TARGETS, "-n", "--quiet", "rules",
                               config=["on_code_change=retrain"]))
        tier = plan.tier_config({**yaml.safe_load((repo / "config.yaml").read_text()),
                                 "tier": "smoke"})
        needed = {s.key for name in TARGETS for s in plan.needed_runs(tier, name)}
        jobs = {f"train_stage{c.stage}_{c.name}" for c in plan.plan_cohorts(tier)
                if needed.intersection(m.key for m in c.members)}
        assert {r for r in retrain if r.startswith("train_stage")} == jobs, retrain
        assert retrain["figure_fig2a"] == retrain["figure_fig4a"] == 1  # and downstream
        keep = _planned(run(*TARGETS, "-n", "--quiet", "rules", config=["on_code_change=keep"]))
        assert keep == {}
    assert _planned(run(*TARGETS, "-n", "--quiet", "rules")) == {}


@pytest.mark.slow
def test_a_new_sweep_point_trains_only_its_new_runs(built, tmp_path):
    """A cohort that gains the new run also lists its members already trained; they are kept
    (update() outputs, reuse), so only the new runs are missing, and only they train."""
    repo, work, run = built
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    grid = cfg["tiers"]["smoke"]["figures"]["fig2a"]["grid"]
    grid["K"] = grid["K"] + [256]
    (tmp_path / "more.yaml").write_text(yaml.safe_dump(cfg))
    proc = run(*TARGETS, "-n", configfile=tmp_path / "more.yaml")
    missing = set()
    for line in proc.stdout.splitlines():
        if line.strip().startswith("reason: Missing output files:"):
            missing |= set(re.findall(r"results/smoke/stage1/([^/\s,]+)/seed=\d+/", line))
    assert missing == {"pe=rope_K=256_B=4_eps=0.1_alpha=0_layers=2_heads=1",
                       "pe=rope_K=256_B=4_eps=0.1_alpha=0_layers=3_heads=1"}, missing
    planned = _planned(run(*TARGETS, "-n", "--quiet", "rules", configfile=tmp_path / "more.yaml"))
    assert "figure_fig4a" not in planned and planned["figure_fig2a"] == 1
    assert not any(rule.startswith("train_stage2") for rule in planned)
    log_dir = work / "results/smoke/logs/stage1/cohorts"
    before = {p: p.stat().st_mtime_ns for p in log_dir.glob("*.log")}
    run(*TARGETS, "--cores", "2", configfile=tmp_path / "more.yaml")
    rerun = [p.read_text() for p in log_dir.glob("*.log") if before.get(p) != p.stat().st_mtime_ns]
    counts = [re.search(r"cohort of (\d+): (\d+) trained, (\d+) already up to date", text)
              for text in rerun]
    assert all(counts) and sum(int(m[2]) for m in counts) == 2  # the two new runs
    assert sum(int(m[3]) for m in counts) >= 1  # their cohorts' other members were kept
    assert _planned(run(*TARGETS, "-n", "--quiet", "rules",
                        configfile=tmp_path / "more.yaml")) == {}
