"""Fingerprints of the code behind each kind of output, so reruns follow the code.

Each output kind depends on a named group of library sources (`CODE_GROUPS`). Its fingerprint,
a hash of those files' bytes, goes into the rule's params (Snakemake reruns a job whose params
changed) and into every trained run's config.json. A change to the README, the CLI's help text
or another figure's module changes no fingerprint but its own. Torch-free: the Snakefile
computes these on every start.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# group -> library paths (files or folders, relative to src/mmicl) whose code shapes that output
CODE_GROUPS: dict[str, tuple[str, ...]] = {
    # a trained run's numbers: data streams, models, the loop, specs, evaluation on test sets
    # (not the job plumbing: train/cohort.py, train/outputs.py, io.py, the CLI, planning)
    "training": ("data/specs.py", "data/worlds.py", "data/sequences.py", "data/multimodal.py",
                 "models", "train/loop.py", "train/members.py", "train/stacking.py", "specs",
                 "train/images.py", "train_encoder.py", "data/images/omniglot.py",
                 "data/images/miniimagenet.py", "data/images/pool.py", "data/images/stream.py",
                 "analysis/evaluate.py"),
    # per-run analyses read trained runs
    "indicators": ("analysis/indicators.py", "analysis/scores.py", "analysis/adapter.py",
                   "analysis/ours.py", "analysis/runs.py"),
    "interventions": ("analysis/interventions.py", "analysis/alignment.py",
                      "analysis/adapter.py", "analysis/ours.py", "analysis/runs.py"),
    "tables": ("analysis/tables.py",),
    "glyphs": ("data/images/glyphs.py",),  # the rendered glyph set (docs/images.md)
    "regression": ("analysis/regression.py",),
    "findings": ("analysis/findings.py", "analysis/finding_stats.py", "analysis/finding_notes.py",
                 "figures/common.py"),
    "figure_common": ("figures/common.py",),
    # Section 5 on a real MLLM (head scores, knockout, LoRA; workflow/rules/vlm.smk)
    "vlm": ("vlm",),
}


# command-line plumbing inside a group's folder: its help texts shape no output
NOT_CODE = ("vlm/commands.py",)


def _files(entry: str) -> list[Path]:
    path = ROOT / entry
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py")
                      if p.relative_to(ROOT).as_posix() not in NOT_CODE)
    return [path] if path.exists() else []


@functools.lru_cache(maxsize=None)
def fingerprint(*entries: str) -> str:
    """Hash of the named source files/folders (path and bytes of each .py file)."""
    digest = hashlib.sha256()
    for entry in entries:
        for path in _files(entry):
            digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_version(group: str = "training") -> str:
    """Fingerprint of one code group (the training code by default), or of one figure's code
    (`figure:<name>`: its module and the shared plotting code)."""
    if group.startswith("figure:"):
        return fingerprint(f"figures/{group.split(':', 1)[1]}.py", *CODE_GROUPS["figure_common"])
    if group not in CODE_GROUPS:
        raise ValueError(f"unknown code group {group!r}; expected one of: "
                         f"{', '.join(CODE_GROUPS)}")
    return fingerprint(*CODE_GROUPS[group])


def code_param(group: str, version: str | None = None) -> str:
    """The value a rule carries in its params: `<group>@<fingerprint>`. Snakemake reruns a job
    whose params changed, and `mmicl stale` reads the group back from Snakemake's records."""
    return f"{group}@{version or code_version(group)}"


def parse_code_param(value: str) -> tuple[str, str] | None:
    """(group, fingerprint) of a code param as Snakemake records it (repr-quoted), else None."""
    group, sep, version = str(value).strip().strip("'\"").rpartition("@")
    if not sep or len(version) != 16 or not group:
        return None
    return group, version
