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


@pytest.fixture(scope="session")
def smoke_build(tmp_path_factory):
    """The whole smoke tier, built once per session from a repository copy (smoke_build.py)."""
    from smoke_build import build

    return build(tmp_path_factory.mktemp("smoke_build"))
