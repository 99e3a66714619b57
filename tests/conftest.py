import os

import pytest
import torch

# Two cores: oversubscribing them makes tiny forwards ~40x slower.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def gen():
    """A fresh, seeded torch generator for deterministic tests."""
    return torch.Generator().manual_seed(1234)
