"""Training jobs: runs grouped into cohorts, each trained by one process.

A cohort holds runs of one model shape and training config (so they can also be stacked into one
model on an accelerator, `mmicl.train.stacking`) that are needed by exactly the same figures.
That last condition keeps a targeted rebuild targeted: building one figure runs exactly the
cohorts whose members it needs, and every member of those cohorts is one it needs (plus the
Stage-1 runs its Stage-2 runs start from). A group larger than `cohorts.size` is split into
contiguous chunks of nearly equal size (9 at size 8 -> 5 + 4).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from mmicl.figures import FIGURE_STAGE
from mmicl.plan.runs import all_runs, needed_runs
from mmicl.specs import RunSpec, resolve
from mmicl.specs.images import image_keys

STACKED_BACKENDS = ("vmap",)  # one stacked model per cohort (mmicl.train.stacking)
BACKENDS = ("auto", "sequential", *STACKED_BACKENDS)


def resolve_backend(backend: str, device) -> str:
    """`auto`: members one after the other on CPU (stacking is not faster there, see
    benchmarks/README.md), stacked with vmap on an accelerator."""
    if backend not in BACKENDS:
        raise ValueError(f"cohort backend {backend!r} is unknown; expected one of: "
                         f"{', '.join(BACKENDS)}")
    if backend == "auto":
        return "sequential" if str(device) == "cpu" else "vmap"
    return backend


@dataclass(frozen=True)
class CohortPlan:
    """One training job: a name usable in a rule name, its stage and its members, in order."""

    name: str
    stage: int
    members: tuple[RunSpec, ...]


def shape_key(spec: RunSpec) -> tuple[str, str]:
    """(key, readable label) of what runs must share to train in one (stacked) model: the model
    config, the training config, and for Stage 2 the initialisation and freezing."""
    model = resolve(spec).model
    decoder = model if spec.stage == 1 else model.decoder
    label = f"{decoder.pe}_L{decoder.n_layers}_H{decoder.n_heads}"
    if decoder.uses_rope and decoder.rope_impl == "standard":
        label += "_std"
    key = {"model": asdict(model), "train": asdict(spec.train)}
    if spec.stage == 2:
        p2 = spec.params2
        key.update({k: p2[k] for k in ("freeze_decoder", "freeze_head", "early_fusion")})
        label += f"_{p2['projector']}_D2_{p2['D2']}" + ("_early" if p2["early_fusion"] else "")
        images = image_keys(p2)  # an M2 encoder is part of the model (docs/images.md)
        if images["encoder"] != "none":
            key.update(images)
            label += f"_{images['encoder']}_{images['m2_data']}"
    return json.dumps(key, sort_keys=True), label


def figures_needing(tier: Mapping) -> dict[tuple, frozenset]:
    """run key -> the figures whose build trains it (the regression figures need every run
    and are left out: they would not split any group)."""
    needed: dict[tuple, set] = {}
    for figure in tier.get("figures", {}):
        if FIGURE_STAGE[figure] in (1, 2) or figure == "fig6":
            for spec in needed_runs(tier, figure):
                needed.setdefault(spec.key, set()).add(figure)
    return {key: frozenset(figs) for key, figs in needed.items()}


def plan_cohorts(tier: Mapping) -> list[CohortPlan]:
    """Every run of the tier in cohorts (Stage 1 first), deterministic."""
    size = tier["cohorts"]["size"]
    if size < 1:
        raise ValueError(f"cohorts.size must be >= 1, got {size}")
    figures = figures_needing(tier)
    groups: dict[tuple, list[RunSpec]] = {}
    labels: dict[tuple, str] = {}
    for spec in all_runs(tier):
        key, label = shape_key(spec)
        group = (spec.stage, key, figures[spec.key])
        groups.setdefault(group, []).append(spec)
        labels[group] = label
    plans: list[CohortPlan] = []
    for group, members in groups.items():
        stage = group[0]
        n_chunks = -(-len(members) // size)
        bounds = [round(j * len(members) / n_chunks) for j in range(n_chunks + 1)]
        text = "".join(c if c.isalnum() else "_" for c in labels[group])
        for lo, hi in zip(bounds, bounds[1:]):
            chunk = tuple(members[lo:hi])
            plans.append(CohortPlan(f"{text}_{cohort_digest(chunk)}", stage, chunk))
    return sorted(plans, key=lambda c: c.stage)


def cohort_digest(members) -> str:
    """8 hex digits naming a cohort by its members: a cohort keeps its name (its rule, log and
    checkpoint) when runs are added elsewhere in the tier, so Snakemake does not rerun it."""
    text = json.dumps(sorted(repr(m.key) for m in members))
    return hashlib.sha1(text.encode()).hexdigest()[:8]
