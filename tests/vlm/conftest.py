"""Shared fixtures of the Section-5 tests: a tiny random Qwen2.5-VL + Qwen2.5 pair on disk (the
36 x 16 head grid, hidden 256) and an Open-MI fixture in the published layout, built once per
session under pytest's tmp dir."""

import os

import pytest
import torch

torch.set_num_threads(1)  # two shared cores: oversubscription makes tiny forwards ~40x slower
os.environ.setdefault("OMP_NUM_THREADS", "1")


# CI (.ci/run) installs the vlm extra and sets MMICL_REQUIRE_VLM=1: a missing or broken extra
# then fails the session instead of quietly skipping every Section-5 test.
REQUIRE = os.environ.get("MMICL_REQUIRE_VLM") == "1"


def _require_extras() -> None:
    import importlib

    for name in ("transformers", "peft"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            pytest.exit(f"MMICL_REQUIRE_VLM=1 but {name} is not importable ({exc}); "
                        f'install the extra: pip install -e ".[vlm]"', returncode=1)


if REQUIRE:
    _require_extras()


def needs_extras():
    pytest.importorskip("transformers")
    pytest.importorskip("peft")


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory):
    needs_extras()
    from mmicl.vlm.tiny import save_tiny_pair

    return save_tiny_pair(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def data_root(tmp_path_factory):
    from mmicl.vlm.openmi import write_fixture

    return write_fixture(tmp_path_factory.mktemp("vlicl"), n_queries=24, seed=0)


@pytest.fixture(scope="session")
def vlm(tiny_pair):
    """(adapter, processor) of the tiny MLLM, loaded once; tests must leave it unmodified."""
    from mmicl.vlm.adapter import HFAdapter, load_model
    from mmicl.vlm.prompt import load_processor

    return HFAdapter(load_model(tiny_pair[0], device="cpu")), load_processor(tiny_pair[0])


@pytest.fixture(scope="session")
def examples(data_root):
    from mmicl.vlm.openmi import load_open_mi

    return load_open_mi(data_root, n_shot=2, n_examples=8, seed=0, source="query")


def pytest_configure(config):
    # peft 0.21 still calls transformers' deprecated is_gradient_checkpointing; not ours to fix.
    config.addinivalue_line("filterwarnings",
                            "ignore:.*is_gradient_checkpointing.*:FutureWarning")
