import os
import sys
from pathlib import Path

import pytest
import torch

# Two cores: oversubscribing them makes tiny forwards ~40x slower.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))  # tests/helpers.py


@pytest.fixture
def gen():
    """A fresh, seeded torch generator for deterministic tests."""
    return torch.Generator().manual_seed(1234)


# Session-long work started in the background at the start of the session, if a selected test
# needs it; the tests that need it run last (in their order), so the rest run meanwhile.
BACKGROUND = ("smoke_build", "slurm_end_to_end", "slurm_preemption")


def _uses(item, names=BACKGROUND) -> bool:
    return bool(set(names) & set(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config, items):
    items[:] = [i for i in items if not _uses(i)] + [i for i in items if _uses(i)]


@pytest.fixture(scope="session", autouse=True)
def _smoke_build_started(request, tmp_path_factory):
    """Starts the smoke build (smoke_build.py) at the beginning of the session."""
    if not any(_uses(i, ["smoke_build"]) for i in request.session.items):
        yield None
        return
    from smoke_build import Background

    background = Background(tmp_path_factory.mktemp("smoke_build"))
    yield background
    background.stop()  # a session that ends early (-x, Ctrl-C) leaves no build running


@pytest.fixture(scope="session", autouse=True)
def _slurm_runs_started(request, tmp_path_factory):
    """Starts the Slurm tests' Snakemake runs (slurm_runs.py) at the beginning of the session,
    when a selected test needs them and a Slurm node is up (else those tests skip or fail on
    their own `cluster` fixture)."""
    from slurm_runs import EndToEnd, Preemption, usable_node

    wanted = {name: kind for name, kind in (("slurm_end_to_end", EndToEnd),
                                           ("slurm_preemption", Preemption))
              if any(_uses(i, [name]) for i in request.session.items)}
    started = {}
    if wanted and usable_node() is None:
        started = {name: kind(tmp_path_factory.mktemp(name)) for name, kind in wanted.items()}
    yield started
    for run in started.values():
        run.stop()


@pytest.fixture(scope="session")
def smoke_build(_smoke_build_started):
    """The whole smoke tier, built once per session from a repository copy (smoke_build.py)."""
    return _smoke_build_started.wait()


@pytest.fixture(scope="session")
def slurm_end_to_end(_slurm_runs_started):
    """Smoke-tier figures built through Slurm (slurm_runs.EndToEnd), once it has finished."""
    return _slurm_runs_started["slurm_end_to_end"].wait()


@pytest.fixture(scope="session")
def slurm_preemption(_slurm_runs_started):
    """A training job cancelled on Slurm and retried (slurm_runs.Preemption), once finished."""
    return _slurm_runs_started["slurm_preemption"].wait()
