"""pyproject.toml and envs/mmicl.yaml must list the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# PyPI and conda-forge spell a few packages differently.
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0].strip().lower()


def test_conda_env_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pip_names = {_name(r) for r in project["dependencies"]}
    for extra in ("test", "slurm"):
        pip_names |= {_name(r) for r in project["optional-dependencies"][extra]}
    pip_names = {CONDA_NAMES.get(n, n) for n in pip_names}

    env = yaml.safe_load((ROOT / "envs/mmicl.yaml").read_text())
    conda_names = {_name(d) for d in env["dependencies"] if isinstance(d, str)}
    conda_names -= {"python", "pip"}
    assert pip_names == conda_names, (
        f"only in pyproject: {sorted(pip_names - conda_names)}; "
        f"only in envs/mmicl.yaml: {sorted(conda_names - pip_names)}"
    )
    # the environment installs this package itself
    pip_section = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    assert "-e .." in pip_section
