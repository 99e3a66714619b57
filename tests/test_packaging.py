"""Packaging: pyproject.toml and envs/mmicl.yaml list the same packages with the same version
bounds, the conda env works where Snakemake deploys it, and the running Python is supported."""

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# PyPI and conda-forge spell a few packages differently.
CONDA_NAMES = {"torch": "pytorch"}
ENV_EXTRAS = ("slurm", "vlm")  # extras the workflow's conda env carries (not `test`)


def _split(requirement: str) -> tuple[str, frozenset]:
    name = re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()
    bounds = requirement[len(name):].split(";")[0].strip()
    return CONDA_NAMES.get(name, name), frozenset(b.strip() for b in bounds.split(",") if b.strip())


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_conda_env_matches_pyproject_in_names_and_bounds():
    project = _project()
    wanted = dict(_split(r) for r in project["dependencies"])
    for extra in ENV_EXTRAS:
        wanted |= dict(_split(r) for r in project["optional-dependencies"][extra])
    env = yaml.safe_load((ROOT / "envs/mmicl.yaml").read_text())
    have = dict(_split(d) for d in env["dependencies"] if isinstance(d, str))
    python = have.pop("python")
    assert have == wanted, (f"only in pyproject: {sorted(set(wanted.items()) - set(have.items()))}; "
                            f"only in envs/mmicl.yaml: {sorted(set(have.items()) - set(wanted.items()))}")
    assert python == frozenset([project["requires-python"].split("#")[0].strip()])


def test_conda_env_holds_no_path_relative_to_itself():
    text = (ROOT / "envs/mmicl.yaml").read_text()
    env = yaml.safe_load(text)
    assert all(isinstance(d, str) for d in env["dependencies"]), "no pip section with paths"
    assert ".." not in "".join(env["dependencies"])


def test_running_python_is_supported():
    minimum = re.search(r">=\s*(\d+)\.(\d+)", _project()["requires-python"])
    assert sys.version_info[:2] >= (int(minimum[1]), int(minimum[2]))
