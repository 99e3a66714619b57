"""Fixtures for the image tests (helpers in image_fixtures.py)."""

import pytest
import torch
from image_fixtures import write_omniglot_tree

torch.set_num_threads(1)


@pytest.fixture
def omniglot_root(tmp_path):
    return write_omniglot_tree(tmp_path)
