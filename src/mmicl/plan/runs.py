"""Run addressing and sweeps: which runs a tier trains, and which of them each figure reads.

A figure declares a sweep (`grid`: a mapping of parameter -> values whose cartesian product is
swept, or a list of such mappings whose union is swept; `fixed`: parameters set for every
point). Every point is one run per seed, addressed by a readable id such as
``pe=rope_K=8192_B=4_eps=0.1_alpha=0_layers=2_heads=1``: the core keys always, then every
other key that differs from the tier default. Equal parameters give equal ids, so a run shared by
several figures is one folder, trained once. Stage-2 grids sweep Stage-2 keys (K2, eps2, ...)
and Stage-1 keys written ``stage1.<key>`` (the decoder a run starts from).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from mmicl.figures import FIGURE_STAGE
from mmicl.specs import EvalConfig, RunSpec, TrainConfig
from mmicl.specs.train import from_mapping

# Always present in a run id, in this order; other keys appear only when they differ from the
# tier default. Short aliases keep ids readable.
CORE_RUN_KEYS = ("pe", "K", "B", "eps", "alpha", "n_layers", "n_heads")
STAGE2_CORE_KEYS = ("K2", "B", "eps1", "eps2", "alpha1", "alpha2")
KEY_ALIASES = {"n_layers": "layers", "n_heads": "heads"}
# Keys that only matter for some position encodings; reset to the default elsewhere so that,
# e.g., an APE run requested with rope_impl=standard is the same run as the plain APE one.
ROPE_ONLY_KEYS = ("rope_impl", "rope_theta")
STAGE1_PREFIX = "stage1."


class PlanError(ValueError):
    """A sweep that cannot be planned; the message names the figure and key."""


def grids_of(sweep: Mapping) -> list[dict]:
    """A figure's grid as a list of mappings (a single mapping is a list of one)."""
    grid = sweep.get("grid", {})
    return list(grid) if isinstance(grid, list) else [grid]


def canonical_params(params: Mapping, defaults: Mapping) -> dict:
    """Reset parameters that do not affect this run: RoPE settings of a non-RoPE model, freezing
    flags of an early-fusion (trained from scratch, nothing frozen) Stage-2 run, G2 of a
    standard-label run."""
    out = dict(params)
    if "pe" in out and out["pe"] not in ("rope", "hybrid"):
        for key in ROPE_ONLY_KEYS:
            out[key] = defaults[key]
    if out.get("early_fusion"):
        out["freeze_decoder"] = False
        out["freeze_head"] = False
    if out.get("label_mode") == "standard":
        out["G2"] = defaults["G2"]
    if out.get("encoder") == "none":  # the encoder options of a run without encoder
        for key in ("encoder_pretrained", "freeze_encoder"):
            if key in defaults:
                out[key] = defaults[key]
    return out


def format_value(value: Any) -> str:
    """Stable, readable text for a run-id value: 0.1 -> '0.1', 1.0 -> '1', True -> 'true'."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Mapping):  # per-PE defaults such as D
        return "+".join(f"{k}{format_value(v)}" for k, v in sorted(value.items()))
    return str(value)


def run_id(params: Mapping, defaults: Mapping, core: tuple[str, ...] = CORE_RUN_KEYS) -> str:
    """The readable address of a run (seed excluded)."""
    params = canonical_params(params, defaults)
    base = canonical_params(defaults, defaults)
    parts = [f"{KEY_ALIASES.get(k, k)}={format_value(params[k])}" for k in core]
    parts += [f"{KEY_ALIASES.get(k, k)}={format_value(params[k])}" for k in defaults
              if k not in core and params[k] != base[k]]
    return "_".join(parts)


# --------------------------------------------------------------------------------------------
# specs of one run


def _train(tier: Mapping, key: str) -> TrainConfig:
    return from_mapping(TrainConfig, tier[key], f"tiers.{tier['tier']}.{key}")


def stage2_train(tier: Mapping, p2: Mapping) -> dict:
    """Stage-2 training: train2, with train_early_fusion's overrides for early fusion."""
    if p2["early_fusion"]:
        return derived_train(tier["train2"], tier.get("train_early_fusion", {}))
    return dict(tier["train2"])


TRAIN_ALIASES = {"iterations": "steps"}
# the training settings that shape the weights (cadences of evaluation, snapshots and
# checkpoints do not; they differ between two specs of one folder only in its fingerprint)
WEIGHT_KEYS = ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "iterations",
               "stop_at_ic")


CADENCE_KEYS = ("eval_every", "checkpoint_every", "snapshot_every")


def derived_train(base: Mapping, own: Mapping) -> dict:
    """`base` with a derived section's keys on top (train_parent, a figure's `train`). A cadence
    the section inherits is capped at its own iterations, so a shorter derived training (smoke's
    30-step parents under a test's checkpoint_every=50) means "once, at the end", not an error;
    a cadence the section sets itself is still checked."""
    cfg = {**base, **own}
    iterations = cfg.get("iterations")
    if isinstance(iterations, int) and iterations > 0:
        for key in CADENCE_KEYS:
            if key not in own and isinstance(cfg.get(key), int) and cfg[key] > iterations:
                cfg[key] = iterations
    return cfg


def train_suffix(train: Mapping, default: Mapping) -> str:
    """The run-id part of a training config other than the tier's `train` (e.g. the longer
    training of the decoders Stage 2 starts from): the differing keys, `_steps=6000`."""
    ours, base = asdict(TrainConfig(**train)), asdict(TrainConfig(**default))
    return "".join(f"_{TRAIN_ALIASES.get(k, k)}={format_value(ours[k])}" for k in WEIGHT_KEYS
                   if base[k] != ours[k])


def stage1_spec(tier: Mapping, params: Mapping, seed: int, train: str = "train",
                overrides: Mapping | None = None) -> RunSpec:
    """A Stage-1 run trained with the tier's `train` section, or (train="train_parent") with
    the one for the decoders Stage-2 runs start from, plus a figure's own `train` overrides.
    Any training that differs from `train` shows in the run id (e.g. `_steps=6000`)."""
    d1 = tier["stage1"]
    params = canonical_params(params, d1)
    cfg = derived_train(tier["train"], {**tier.get(train, {}), **(overrides or {})})
    where = f"tiers.{tier['tier']}.{train}"
    return RunSpec(stage=1, seed=int(seed), run=run_id(params, d1) + train_suffix(cfg, tier["train"]),
                   params1=params, train=from_mapping(TrainConfig, cfg, where),
                   eval=EvalConfig(**tier["eval"]), tier=tier["tier"], device=tier["device"])


def stage2_spec(tier: Mapping, p1: Mapping, p2: Mapping, seed: int,
                overrides: Mapping | None = None) -> RunSpec:
    """A Stage-2 run trained with train2 (early fusion: with train_early_fusion's overrides),
    plus a figure's own `train` overrides, which show in the run id (e.g. `_steps=2500`)."""
    d1, d2 = tier["stage1"], tier["stage2"]
    p1, p2 = canonical_params(p1, d1), canonical_params(p2, d2)
    base = stage2_train(tier, p2)
    cfg = derived_train(base, overrides or {})
    train = from_mapping(TrainConfig, cfg, f"tiers.{tier['tier']}.train2")
    # an early-fusion run sits under the id of the Stage-1 architecture it trains from scratch
    stage1_run = (run_id(p1, d1) if p2["early_fusion"]
                  else stage1_spec(tier, p1, seed, "train_parent").run)
    return RunSpec(stage=2, seed=int(seed),
                   run=run_id(p2, d2, STAGE2_CORE_KEYS) + train_suffix(cfg, base), params1=p1,
                   params2=p2, stage1_run=stage1_run, train=train,
                   eval=EvalConfig(**tier["eval"]), tier=tier["tier"], device=tier["device"])


def parent(tier: Mapping, spec: RunSpec) -> RunSpec | None:
    """The Stage-1 run whose checkpoint a two-stage run starts from (None: Stage 1, early
    fusion), trained with the tier's `train_parent` settings."""
    if spec.stage == 1 or spec.early_fusion:
        return None
    return stage1_spec(tier, spec.params1, spec.seed, "train_parent")


# --------------------------------------------------------------------------------------------
# sweeps


def _seeds(tier: Mapping, figure: str) -> list[int]:
    return tier["figures"][figure].get("seeds", tier["seeds"])


def _sweep(tier: Mapping, figure: str) -> Mapping:
    try:
        return tier["figures"][figure]
    except KeyError:
        raise PlanError(f"figure {figure!r} is not configured in tier {tier['tier']!r}; "
                        f"configured: {', '.join(tier.get('figures', {}))}") from None


def stage1_points(tier: Mapping, figure: str) -> list[dict]:
    """Stage-1 parameter dicts of every grid point of a Stage-1 figure."""
    sweep, defaults = _sweep(tier, figure), tier["stage1"]
    points = []
    for grid in grids_of(sweep):
        for key in list(grid) + list(sweep.get("fixed", {})):
            if key not in defaults:
                raise PlanError(f"figures.{figure}: {key!r} is not a Stage-1 parameter; "
                                f"expected one of: {', '.join(defaults)}")
        for values in itertools.product(*grid.values()):
            points.append({**defaults, **sweep.get("fixed", {}), **dict(zip(grid, values))})
    return points


def stage2_points(tier: Mapping, figure: str) -> list[tuple[dict, dict]]:
    """(Stage-1 params, Stage-2 params) of every grid point of a Stage-2 figure."""
    sweep = _sweep(tier, figure)
    d1, d2 = tier["stage1"], tier["stage2"]
    points = []
    for grid in grids_of(sweep):
        for values in itertools.product(*grid.values()):
            p1, p2 = dict(d1), dict(d2)
            for key, value in {**sweep.get("fixed", {}), **dict(zip(grid, values))}.items():
                if key.startswith(STAGE1_PREFIX) and key[len(STAGE1_PREFIX):] in d1:
                    p1[key[len(STAGE1_PREFIX):]] = value
                elif key in d2:
                    p2[key] = value
                else:
                    raise PlanError(f"figures.{figure}: {key!r} is neither a Stage-2 parameter "
                                    f"({', '.join(d2)}) nor a Stage-1 one written as "
                                    f"stage1.<key>")
            points.append((p1, p2))
    return points + reference_points(tier, figure)


def reference_points(tier: Mapping, figure: str) -> list[tuple[dict, dict]]:
    """Runs a figure draws beside its grid, trained like its grid: app_encoders' projector-only
    run (encoder none, the figure's fixed keys)."""
    if figure != "app_encoders":
        return []
    sweep, d1, d2 = _sweep(tier, figure), tier["stage1"], tier["stage2"]
    return [(dict(d1), {**d2, **sweep.get("fixed", {}), "encoder": "none"})]


def gaussian_reference(tier: Mapping, figure: str, seeds) -> list[RunSpec]:
    """The image figures' Gaussian Stage-2 runs at `gaussian_K2` x the grid's B: Stage-2
    defaults and training (the same runs as Fig. 4a's at those points)."""
    sweep, d1, d2 = _sweep(tier, figure), tier["stage1"], tier["stage2"]
    if "gaussian_K2" not in sweep:
        return []
    Bs = sorted({b for grid in grids_of(sweep) for b in grid.get("B", [d2["B"]])})
    return [stage2_spec(tier, d1, {**d2, "K2": K2, "B": B}, s)
            for K2 in sweep["gaussian_K2"] for B in Bs for s in seeds]


def _unique(specs) -> list[RunSpec]:
    return list({spec.key: spec for spec in specs}.values())


def default_runs(tier: Mapping) -> list[RunSpec]:
    """Fig. 6's runs: the default Stage-2 run and the Stage-1 run it starts from (one decoder
    followed through both stages), at fig6's seeds."""
    seeds = _seeds(tier, "fig6")
    stage2 = [stage2_spec(tier, tier["stage1"], tier["stage2"], s) for s in seeds]
    return [parent(tier, s) for s in stage2] + stage2


def figure_runs(tier: Mapping, figure: str) -> list[RunSpec]:
    """The runs whose tables a figure reads (Stage-1 figures: Stage-1 runs; Stage-2 figures:
    Stage-2 runs; fig6: the default run of each stage; table1/app_regression: every run)."""
    stage = FIGURE_STAGE[figure]
    seeds = _seeds(tier, figure) if figure in tier.get("figures", {}) else tier["seeds"]
    train = tier.get("figures", {}).get(figure, {}).get("train")  # the figure's own overrides
    if stage == 1:
        return _unique(stage1_spec(tier, p, s, overrides=train)
                       for p in stage1_points(tier, figure) for s in seeds)
    if stage == 2:
        return _unique([stage2_spec(tier, p1, p2, s, overrides=train)
                        for p1, p2 in stage2_points(tier, figure) for s in seeds]
                       + gaussian_reference(tier, figure, seeds))
    if figure == "fig6":
        return default_runs(tier)
    return all_runs(tier)


def needed_runs(tier: Mapping, figure: str) -> list[RunSpec]:
    """What building `figure` trains: its runs and the Stage-1 runs they start from."""
    runs = figure_runs(tier, figure)
    parents = [p for p in (parent(tier, s) for s in runs) if p is not None]
    return _unique(parents + runs)


def all_runs(tier: Mapping) -> list[RunSpec]:
    """Every run of the tier, Stage 1 first, figure by figure, each once."""
    specs: list[RunSpec] = []
    for figure in tier.get("figures", {}):
        if FIGURE_STAGE[figure] in (1, 2) or figure == "fig6":
            runs = needed_runs(tier, figure)
            specs += runs
    specs = _unique(specs)
    return [s for s in specs if s.stage == 1] + [s for s in specs if s.stage == 2]
