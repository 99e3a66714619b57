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


def _uses_smoke_build(item) -> bool:
    return "smoke_build" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    """The tests that need the built smoke tier run last (in their order), so that the rest run
    while it builds in the background (`_smoke_build_started`)."""
    items[:] = ([i for i in items if not _uses_smoke_build(i)]
                + [i for i in items if _uses_smoke_build(i)])


@pytest.fixture(scope="session", autouse=True)
def _smoke_build_started(request, tmp_path_factory):
    """Starts the smoke build at the beginning of the session if a selected test needs it."""
    if not any(_uses_smoke_build(i) for i in request.session.items):
        yield None
        return
    from smoke_build import Background

    background = Background(tmp_path_factory.mktemp("smoke_build"))
    yield background
    background.stop()  # a session that ends early (-x, Ctrl-C) leaves no build running


@pytest.fixture(scope="session")
def smoke_build(_smoke_build_started):
    """The whole smoke tier, built once per session from a repository copy (smoke_build.py)."""
    return _smoke_build_started.wait()
