"""Whether and how the workflow builds the Section-5 figures (Fig. 7, Table 3, Fig. 8).

Planning only: no torch, transformers or peft import (the Snakefile reads this on every
invocation). The `vlm` config section names two local checkpoints and a VL-ICL folder; the smoke
tier instead runs the chain on a tiny random model pair and a generated Open-MI fixture, built
by a workflow rule. When neither is possible, `vlm_plan` says why in one line and the workflow
leaves the three figures out of `all`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

from mmicl.figures import VLM_FIGURES
from mmicl.vlm import EXTRA_PACKAGES, INSTALL_HINT

__all__ = ["VLM_FIGURES", "missing_extra", "skip_line", "vlm_plan"]
ENV_ROOT = "VL_ICL_DATA_ROOT"  # the same variable mmicl.vlm.openmi reads
SMOKE_TIER = "smoke"

# Settings when config.yaml has no `vlm` section (the authors' §5 values).
DEFAULTS = {
    "mllm_path": "", "llm_path": "", "data_root": "",
    "n_shot": 2, "n_examples": 16, "n_examples_llm": 50, "n_eval": 50, "seed": 0, "top_k": 5,
    "random_seed": 0, "dtype": "auto", "device": "auto", "max_pixels": None,
    "lora": {"rank": 16, "alpha": 32, "lr": 2e-5, "steps": 500, "eval_every": 25,
             "n_train": 100, "n_eval": 16},
    "smoke": {"n_examples": 8, "n_examples_llm": 8, "n_eval": 12,
              "lora": {"steps": 6, "eval_every": 3, "lr": 1e-3, "n_train": 16, "n_eval": 4}},
}


def missing_extra() -> list[str]:
    """The packages of the `vlm` extra that are not installed (found without importing them)."""
    missing = []
    for name in EXTRA_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken or half-removed install
            found = False
        if not found:
            missing.append(name)
    return missing


def _merge(base: Mapping, over: Mapping) -> dict:
    out = dict(base)
    for key, value in (over or {}).items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and \
            isinstance(out.get(key), Mapping) else value
    return out


def _checkpoint_problem(label: str, path: str) -> str | None:
    if not path:
        return f"vlm.{label} is not set"
    p = Path(path)
    if not (p / "config.json").is_file():
        return f"vlm.{label}={path} holds no config.json (expected a local Hugging Face checkpoint)"
    if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
        return f"vlm.{label}={path} holds no weights (*.safetensors or *.bin)"
    return None


def vlm_plan(config: Mapping, tier: str, results: str) -> dict:
    """The Section-5 plan of a workflow run: `enabled`, `reason` (why not), `tiny`, the
    checkpoint and data paths the rules read (the smoke tier: paths its setup rule writes)
    and the merged settings."""
    settings = _merge(DEFAULTS, config.get("vlm") or {})
    smoke = settings.pop("smoke")
    tiny = tier == SMOKE_TIER
    if tiny:
        settings = _merge(settings, smoke)
    base = f"{results}/{tier}/vlm"
    out = {"enabled": False, "reason": "", "tiny": tiny, "dir": base, "settings": settings}
    missing = missing_extra()
    if missing:
        out["reason"] = (f"the vlm extra is not installed (missing {', '.join(missing)}; "
                         f"{INSTALL_HINT})")
        return out
    if tiny:
        out.update(enabled=True, mllm=f"{base}/inputs/models/mllm",
                   llm=f"{base}/inputs/models/llm", data_root=f"{base}/inputs/VL-ICL")
        return out
    data_root = settings["data_root"] or os.environ.get(ENV_ROOT, "")
    problems = [p for p in (_checkpoint_problem("mllm_path", settings["mllm_path"]),
                            _checkpoint_problem("llm_path", settings["llm_path"])) if p]
    if not data_root:
        problems.append(f"vlm.data_root is not set (nor ${ENV_ROOT})")
    elif not (Path(data_root) / "open_mi").is_dir():
        problems.append(f"the data root {data_root} holds no open_mi/ folder")
    if problems:
        out["reason"] = "; ".join(problems)
        return out
    out.update(enabled=True, mllm=settings["mllm_path"], llm=settings["llm_path"],
               data_root=data_root)
    return out


def skip_line(plan: Mapping) -> str:
    """The one line the workflow prints when the Section-5 figures are not built."""
    return (f"mmicl vlm: Section-5 figures ({', '.join(VLM_FIGURES)}) skipped: {plan['reason']} "
            f"(see docs/vlm.md)")
