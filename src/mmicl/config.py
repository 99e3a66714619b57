"""Configuration: tiers, run addressing and validation.

`config.yaml` holds a `defaults` block and per-tier overrides (`tiers.smoke`, `tiers.laptop`,
`tiers.paper`). The active tier is the deep merge of the two. A figure declares a sweep (`grid` of
run parameters, optional `fixed` overrides); every point of every sweep is one Stage-1 run,
addressed by a readable id such as ``pe=ape_K=8192_B=4_eps=0.1_alpha=0_layers=2_heads=1``. Equal
parameters give equal ids, so a run shared by several figures is trained once.

Validation happens in two passes, both before any job runs: structure against the JSON schema in
``workflow/schemas/config.schema.yaml`` (unknown keys, wrong types) and semantics here (K a multiple
of L, N divisible by B, model width divisible by the head count, ...). Errors name the config key.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

# Only torch-free modules: the Snakefile imports this module to plan every job (and Slurm jobs
# re-read the Snakefile), so it must not pay for importing torch (tests/test_config.py).
from mmicl.data.specs import MultimodalSpec, SequenceSpec
from mmicl.figures import FIGURE_STAGE, FIGURES
from mmicl.models.specs import PE_KINDS, DecoderConfig, MultimodalConfig

TIERS = ("smoke", "laptop", "paper")

# Always present in a Stage-1 run id, in this order; other keys appear only when they differ from
# the tier default. Short aliases keep ids readable.
CORE_RUN_KEYS = ("pe", "K", "B", "eps", "alpha", "n_layers", "n_heads")
KEY_ALIASES = {"n_layers": "layers", "n_heads": "heads"}
ALIAS_KEYS = {v: k for k, v in KEY_ALIASES.items()}
# Keys that only matter for some position encodings; reset to the default elsewhere so that, e.g.,
# an APE run requested with rope_impl=standard is the same run as the plain APE one.
ROPE_ONLY_KEYS = ("rope_impl", "rope_theta")


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message."""


# --------------------------------------------------------------------------------------------
# loading and validation


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge `override` into a copy of `base` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _format_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_schema(config: Mapping, schema_path: str | Path) -> None:
    """Check `config` against the JSON schema; raise ConfigError naming the first bad key."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    messages = []
    for err in errors[:5]:
        where = _format_path(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            unknown = sorted(set(err.instance) - set(allowed))
            messages.append(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"expected one of: {', '.join(allowed)}"
            )
        elif err.validator == "enum":
            messages.append(
                f"{where}: {err.instance!r} is not allowed; expected one of: "
                f"{', '.join(map(str, err.validator_value))}"
            )
        else:
            messages.append(f"{where}: {err.message}")
    raise ConfigError("invalid config:\n  " + "\n  ".join(messages))


def load_config(path: str | Path, schema_path: str | Path, overrides: Mapping | None = None) -> dict:
    """Read a config file, apply command-line overrides, validate structure and semantics."""
    config = yaml.safe_load(Path(path).read_text()) or {}
    if overrides:
        config = deep_merge(config, overrides)
    validate_schema(config, schema_path)
    tier_config(config)  # semantic checks
    return config


def tier_config(config: Mapping) -> dict:
    """The active tier's settings: `defaults` deep-merged with `tiers[tier]`, semantically checked."""
    tier = config.get("tier", "laptop")
    tiers = config.get("tiers", {})
    if tier not in tiers:
        raise ConfigError(f"tier={tier!r} is not defined; expected one of: {', '.join(tiers)}")
    merged = deep_merge(config.get("defaults", {}), tiers[tier] or {})
    merged["tier"] = tier
    merged["device"] = config.get("device", "cpu")
    merged["results"] = config.get("results", "results")
    check_tier(merged)
    return merged


def check_tier(tier: Mapping) -> None:
    """Semantic checks of every run any figure asks for: stops before a single job is scheduled."""
    where = f"tiers.{tier['tier']}"
    for key in ("train", "train2"):
        if key in tier:
            _check_train(tier[key], f"{where}.{key}")
    for name, sweep in tier.get("figures", {}).items():
        if name not in FIGURES:
            raise ConfigError(
                f"{where}.figures: unknown figure {name!r}; expected one of: {', '.join(FIGURES)}"
            )
        try:
            if FIGURE_STAGE[name] == 0:
                continue  # analysis figures read runs other figures (or fig6's defaults) train
            if FIGURE_STAGE[name] == 1:
                for params in sweep_points(tier, name):
                    stage1_specs(params)
            else:
                for p1, p2 in stage2_points(tier, name):
                    stage2_specs(p1, p2)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{where}.figures.{name}: {exc}") from None


def _check_train(train: Mapping, where: str) -> None:
    try:
        TrainConfig(**train)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for key in ("eval_every", "checkpoint_every", "snapshot_every"):
        if train[key] > train["iterations"]:
            raise ConfigError(
                f"{where}.{key}={train[key]} exceeds {where}.iterations={train['iterations']}"
            )


# --------------------------------------------------------------------------------------------
# sweeps and run ids


def sweep_points(tier: Mapping, figure: str) -> list[dict]:
    """Full Stage-1 parameter dicts (seed excluded) of every grid point of a figure, canonicalised."""
    try:
        sweep = tier["figures"][figure]
    except KeyError:
        raise ConfigError(
            f"unknown figure {figure!r}; configured: {', '.join(tier.get('figures', {}))}"
        ) from None
    defaults = tier["stage1"]
    base = deep_merge(defaults, sweep.get("fixed", {}))
    points = []
    for grid in grids_of(sweep):
        for key in list(grid) + list(sweep.get("fixed", {})):
            if key not in defaults:
                raise ConfigError(
                    f"figures.{figure}: {key!r} is not a Stage-1 parameter; "
                    f"expected one of: {', '.join(defaults)}"
                )
        for values in itertools.product(*grid.values()):
            params = {**base, **dict(zip(grid, values))}
            points.append(canonical_params(params, defaults))
    return points


def grids_of(sweep: Mapping) -> list[dict]:
    """A figure's grid as a list of mappings (a single mapping is a list of one)."""
    grid = sweep.get("grid", {})
    return list(grid) if isinstance(grid, list) else [grid]


def canonical_params(params: Mapping, defaults: Mapping) -> dict:
    """Reset parameters that do not affect this run: RoPE settings of a non-RoPE model, freezing
    flags of an early-fusion (trained from scratch, nothing frozen) Stage-2 run."""
    out = dict(params)
    if "pe" in out and out["pe"] not in ("rope", "hybrid"):
        for key in ROPE_ONLY_KEYS:
            out[key] = defaults[key]
    if out.get("early_fusion"):
        out["freeze_decoder"] = False
        out["freeze_head"] = False
    if out.get("label_mode") == "standard":
        out["G2"] = defaults["G2"]
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
    """The readable address of a run (seed excluded): the `core` keys always, then every other
    key that differs from the tier default."""
    params = canonical_params(params, defaults)
    parts = [f"{KEY_ALIASES.get(k, k)}={format_value(params[k])}" for k in core]
    for key in defaults:
        if key not in core and params[key] != canonical_params(defaults, defaults)[key]:
            parts.append(f"{KEY_ALIASES.get(key, key)}={format_value(params[key])}")
    return "_".join(parts)


def parse_run_id(text: str, defaults: Mapping) -> dict:
    """Inverse of `run_id`: the full parameter dict, typed like the defaults."""
    params = dict(defaults)
    for part in _split_run_id(text):
        key, _, raw = part.partition("=")
        key = ALIAS_KEYS.get(key, key)
        if key not in defaults:
            raise ConfigError(f"run id {text!r}: unknown parameter {key!r}")
        params[key] = _parse_value(raw, defaults[key], key)
    return canonical_params(params, defaults)


def _split_run_id(text: str) -> list[str]:
    # Keys may contain underscores (p_bursty) but values never do, so a part ends at the first
    # '_'-separated token that holds an '='.
    parts, buffer = [], []
    for token in text.split("_"):
        buffer.append(token)
        if "=" in token:
            parts.append("_".join(buffer))
            buffer = []
    if buffer:
        raise ConfigError(f"run id {text!r}: trailing text {'_'.join(buffer)!r} has no '='")
    return parts


def _parse_value(raw: str, default: Any, key: str) -> Any:
    try:
        if isinstance(default, bool):
            if raw not in ("true", "false"):
                raise ValueError
            return raw == "true"
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Mapping):  # a per-PE default overridden by one integer
            return int(raw)
        return raw
    except ValueError:
        raise ConfigError(f"run id: cannot read {key}={raw!r}") from None


def figure_runs(tier: Mapping, figure: str) -> list[tuple[str, int]]:
    """(Stage-1 run id, seed) pairs a Stage-1 figure reads."""
    defaults = tier["stage1"]
    ids = dict.fromkeys(run_id(p, defaults) for p in sweep_points(tier, figure))
    seeds = tier["figures"][figure].get("seeds", tier["seeds"])
    return [(rid, seed) for rid in ids for seed in seeds]


def dynamics_runs(tier: Mapping) -> tuple[list[tuple[str, int]], list[tuple[str, str, int]]]:
    """Fig. 6's runs: the default Stage-1 run and the default Stage-2 run, at fig6's seeds."""
    if "fig6" not in tier.get("figures", {}):
        return [], []
    seeds = tier["figures"]["fig6"].get("seeds", tier["seeds"])
    d1, d2 = tier["stage1"], tier["stage2"]
    s1 = run_id(canonical_params(d1, d1), d1)
    s2 = run_id(canonical_params(d2, d2), d2, STAGE2_CORE_KEYS)
    return [(s1, seed) for seed in seeds], [(s1, s2, seed) for seed in seeds]


def all_runs(tier: Mapping) -> list[tuple[str, int]]:
    """Every Stage-1 (run id, seed) of the tier, deduplicated across figures, including the
    checkpoints Stage-2 runs start from."""
    runs = dict.fromkeys(dynamics_runs(tier)[0])
    for figure in tier.get("figures", {}):
        if FIGURE_STAGE[figure] == 1:
            runs.update(dict.fromkeys(figure_runs(tier, figure)))
        else:
            runs.update(dict.fromkeys(
                (s1, seed) for s1, s2, seed in stage2_figure_runs(tier, figure)
                if not parse_run_id(s2, tier["stage2"])["early_fusion"]
            ))
    return list(runs)


# --------------------------------------------------------------------------------------------
# Stage 2: a run is (its Stage-1 run, its own parameters, seed). Figure grids may sweep Stage-2
# keys (K2, B, eps2, ...) and Stage-1 keys written as "stage1.<key>" (e.g. stage1.n_layers).

STAGE2_CORE_KEYS = ("K2", "B", "eps1", "eps2", "alpha1", "alpha2")
STAGE1_PREFIX = "stage1."


def stage2_points(tier: Mapping, figure: str) -> list[tuple[dict, dict]]:
    """(Stage-1 params, Stage-2 params) of every grid point of a Stage-2 figure."""
    sweep = tier["figures"][figure]
    d1, d2 = tier["stage1"], tier["stage2"]
    points = []
    for grid in grids_of(sweep):
        for values in itertools.product(*grid.values()):
            chosen = {**sweep.get("fixed", {}), **dict(zip(grid, values))}
            p1, p2 = dict(d1), dict(d2)
            for key, value in chosen.items():
                if key.startswith(STAGE1_PREFIX) and key[len(STAGE1_PREFIX):] in d1:
                    p1[key[len(STAGE1_PREFIX):]] = value
                elif key in d2:
                    p2[key] = value
                else:
                    raise ConfigError(
                        f"figures.{figure}: {key!r} is neither a Stage-2 parameter "
                        f"({', '.join(d2)}) nor a Stage-1 one written as stage1.<key>"
                    )
            points.append((canonical_params(p1, d1), canonical_params(p2, d2)))
    return points


def stage2_figure_runs(tier: Mapping, figure: str) -> list[tuple[str, str, int]]:
    """(Stage-1 run id, Stage-2 run id, seed) triples a Stage-2 figure reads."""
    ids = dict.fromkeys(
        (run_id(p1, tier["stage1"]), run_id(p2, tier["stage2"], STAGE2_CORE_KEYS))
        for p1, p2 in stage2_points(tier, figure)
    )
    seeds = tier["figures"][figure].get("seeds", tier["seeds"])
    return [(s1, s2, seed) for s1, s2 in ids for seed in seeds]


def all_stage2_runs(tier: Mapping) -> list[tuple[str, str, int]]:
    runs = dict.fromkeys(dynamics_runs(tier)[1])
    for figure in tier.get("figures", {}):
        if FIGURE_STAGE[figure] == 2:
            runs.update(dict.fromkeys(stage2_figure_runs(tier, figure)))
    return list(runs)


def stage2_specs(p1: Mapping, p2: Mapping):
    """Multimodal world spec, sequence spec and model config of one Stage-2 run."""
    world1, _, decoder_cfg = stage1_specs(p1)
    K2, L2, D2 = int(p2["K2"]), int(p2["L2"]), int(p2["D2"])
    if p2["label_mode"] == "joint":
        # joint labels g1*G2 + g2 over the whole M1 vocabulary: G1 = L1 / G2, and the world's
        # M2 grouping is k mod G2 (so the world is the multimodal one with L2 = G2)
        if world1["L"] % p2["G2"]:
            raise ValueError(f"G2={p2['G2']} must divide L1={world1['L']} (G1 = L1 / G2)")
        L2 = int(p2["G2"])
    if L2 > world1["L"]:
        raise ValueError(f"L2={L2} exceeds L1={world1['L']}: M2 labels are a subset of M1's")
    if K2 % L2:
        raise ValueError(f"K2={K2} must be a multiple of L2={L2} (every label owns K2/L2 classes)")
    world = {"K1": world1["K"], "L1": world1["L"], "D1": world1["D"], "K2": K2, "L2": L2, "D2": D2}
    spec = MultimodalSpec(
        N=p2["N"], B=p2["B"], p_bursty=p2["p_bursty"], p_novel=p2["p_novel"], eps1=p2["eps1"],
        eps2=p2["eps2"], alpha1=p2["alpha1"], alpha2=p2["alpha2"], no_repeats=p2["no_repeats"],
        n_novel2=p2["n_novel2"] or None,
    )
    model = MultimodalConfig(decoder=decoder_cfg, m2_dim=D2, projector=p2["projector"])
    return world, spec, model


# --------------------------------------------------------------------------------------------
# cohorts: runs with equal keys share their model configuration and training config, so they can
# train together (mmicl.cohort.plan_cohorts partitions them; the label keeps job names readable)


STACKED_BACKENDS = ("bmm", "vmap")  # one stacked model per cohort (mmicl.cohort)
WORKFLOW_BACKENDS = ("auto", "sequential", *STACKED_BACKENDS)


def resolve_backend(backend: str, device) -> str:
    """`auto`: members one after the other on CPU (stacking is not faster there, see
    benchmarks/README.md), stacked `bmm` on an accelerator."""
    if backend not in WORKFLOW_BACKENDS:
        raise ValueError(f"cohort backend {backend!r} is unknown; expected one of: "
                         f"{', '.join(WORKFLOW_BACKENDS)}")
    if backend == "auto":
        return "sequential" if str(device) == "cpu" else "bmm"
    return backend


@dataclass(frozen=True)
class CohortPlan:
    """One cohort job of the workflow: a name usable as a rule name and its members, in order."""

    name: str
    members: tuple


def plan_cohorts(items: list, key, size: int, label=str, prefix: str = "") -> list[CohortPlan]:
    """Partition `items` into cohorts of at most `size` items sharing `key(item)`.

    Deterministic: groups in order of their first item, items in their given order (callers list
    a figure's runs together, so a figure's runs share few cohorts), and a group of n items split
    into ceil(n / size) contiguous cohorts of nearly equal size (9 at size 8 -> 5 + 4, not 8 + 1).
    Names are `<prefix><index>_<label(key)>` with only [A-Za-z0-9_].
    """
    if size < 1:
        raise ValueError(f"cohort size must be >= 1, got {size}")
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    plans = []
    for group_key, group in groups.items():
        n_chunks = -(-len(group) // size)
        bounds = [round(j * len(group) / n_chunks) for j in range(n_chunks + 1)]
        for lo, hi in zip(bounds, bounds[1:]):
            text = "".join(c if c.isalnum() else "_" for c in str(label(group_key)))
            plans.append(CohortPlan(f"{prefix}{len(plans):03d}_{text}", tuple(group[lo:hi])))
    return plans


def _model_label(model: DecoderConfig) -> str:
    label = f"{model.pe}_L{model.n_layers}_H{model.n_heads}"
    return label + ("_std" if model.uses_rope and model.rope_impl == "standard" else "")


def stage1_cohort_key(params: Mapping, train: Mapping) -> tuple[str, str]:
    """(key, label) of a Stage-1 run trained with `train`."""
    _, _, model = stage1_specs(params)
    return json.dumps({"model": asdict(model), "train": dict(train)}, sort_keys=True), \
        _model_label(model)


def stage2_cohort_key(p1: Mapping, p2: Mapping, train: Mapping) -> tuple[str, str]:
    """(key, label) of a Stage-2 run trained with `train`: model (decoder, projector, M2 width),
    initialisation and freezing decide which parameters exist and train."""
    _, _, model = stage2_specs(p1, p2)
    key = {"model": asdict(model), "train": dict(train),
           **{k: p2[k] for k in ("freeze_decoder", "freeze_head", "early_fusion")}}
    label = f"{_model_label(model.decoder)}_{p2['projector']}_D2_{p2['D2']}"
    if p2["early_fusion"]:
        label += "_early"
    return json.dumps(key, sort_keys=True), label


def stage2_train(tier: Mapping, p2: Mapping) -> dict:
    """Training config of a Stage-2 run: train2, with train_early_fusion's overrides for early
    fusion."""
    if p2["early_fusion"]:
        return {**tier["train2"], **tier.get("train_early_fusion", {})}
    return dict(tier["train2"])


def stage1_cohorts(tier: Mapping) -> list[CohortPlan]:
    """Every Stage-1 (run, seed) of the tier (figure by figure) in cohorts of one model shape."""
    runs = all_runs(tier)
    keys = {run: stage1_cohort_key(parse_run_id(run, tier["stage1"]), tier["train"])
            for run, _ in runs}
    return plan_cohorts(runs, key=lambda item: keys[item[0]], size=tier["cohorts"]["size"],
                        label=lambda key: key[1])


def stage2_cohorts(tier: Mapping) -> list[CohortPlan]:
    """Every Stage-2 (Stage-1 run, run, seed) of the tier in cohorts of one model shape."""
    def key(item):
        p1 = parse_run_id(item[0], tier["stage1"])
        p2 = parse_run_id(item[1], tier["stage2"])
        return stage2_cohort_key(p1, p2, stage2_train(tier, p2))

    return plan_cohorts(all_stage2_runs(tier), key=key, size=tier["cohorts"]["size"],
                        label=lambda key: key[1])


# --------------------------------------------------------------------------------------------
# typed specs of one run


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"  # sgd | adam | adamw; the paper: sgd
    lr: float = 1e-3
    weight_decay: float = 1e-6
    momentum: float = 0.0  # SGD only; the reference uses plain SGD
    batch_size: int = 128
    iterations: int = 2000
    eval_every: int = 100
    checkpoint_every: int = 500
    # weight snapshots for the indicator step: every `snapshot_every` steps, plus every
    # `snapshot_dense_every` steps up to `snapshot_dense_until` (0 = no dense window)
    snapshot_every: int = 100
    snapshot_dense_every: int = 0
    snapshot_dense_until: int = 0

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ValueError(
                f"optimizer={self.optimizer!r} is not supported; expected one of: sgd, adam, adamw"
            )
        for key in ("batch_size", "iterations", "eval_every", "checkpoint_every", "snapshot_every"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}={getattr(self, key)} must be a positive integer")
        for key in ("snapshot_dense_every", "snapshot_dense_until"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)} must be >= 0")
        if (self.snapshot_dense_every == 0) != (self.snapshot_dense_until == 0):
            raise ValueError("snapshot_dense_every and snapshot_dense_until are set together "
                             f"(got {self.snapshot_dense_every} and {self.snapshot_dense_until})")

    def snapshot_iterations(self) -> list[int]:
        """Iterations whose weights are kept: 0, every snapshot_every, the dense window, the end."""
        its = {0, self.iterations, *range(0, self.iterations + 1, self.snapshot_every)}
        if self.snapshot_dense_every:
            its |= set(range(0, min(self.snapshot_dense_until, self.iterations) + 1,
                             self.snapshot_dense_every))
        return sorted(its)


def content_dim(params: Mapping) -> int:
    """D of a run: an int, or a per-PE mapping (APE 63 and hybrid 62 keep the width at 128)."""
    D = params["D"]
    if isinstance(D, Mapping):
        if params["pe"] not in D:
            raise ValueError(f"D has no entry for pe={params['pe']!r}; got keys {sorted(D)}")
        return int(D[params["pe"]])
    return int(D)


def stage1_specs(params: Mapping) -> tuple[dict, SequenceSpec, DecoderConfig]:
    """World spec, training-sequence spec and decoder config of one Stage-1 parameter dict."""
    if params["pe"] not in PE_KINDS:
        raise ValueError(
            f"pe={params['pe']!r} is not a known position encoding; expected one of: "
            f"{', '.join(PE_KINDS)}"
        )
    K, L = int(params["K"]), int(params["L"])
    if K % L:
        raise ValueError(f"K={K} must be a multiple of L={L} (every label owns K/L classes)")
    world = {"K": K, "L": L, "D": content_dim(params)}
    seq = SequenceSpec(
        N=params["N"], B=params["B"], p_bursty=params["p_bursty"], p_novel=params["p_novel"],
        eps=params["eps"], alpha=params["alpha"], no_repeats=params["no_repeats"],
    )
    model = DecoderConfig(
        content_dim=world["D"], n_labels=L, n_layers=params["n_layers"],
        n_heads=params["n_heads"], pe=params["pe"], rope_impl=params["rope_impl"],
        rope_theta=float(params["rope_theta"]), rms_norm=params["rms_norm"],
        mlp_variant=params["mlp_variant"],
    )
    return world, seq, model


def derive_seed(seed: int, purpose: str) -> int:
    """Independent seeds for init / training data / evaluation data from one run seed."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def world_filename(seed: int, world: Mapping) -> str:
    return f"seed={seed}_K={world['K']}_L={world['L']}_D={world['D']}.parquet"


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
