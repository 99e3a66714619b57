"""The workflow configuration: tiers, validation, and the settings every job resolves from.

`config.yaml` holds a `defaults` block and per-tier overrides (`tiers.smoke`, `tiers.laptop`,
`tiers.paper`); the active tier is the deep merge of the two. Validation happens before any job
runs, in two passes: structure against the JSON schema (unknown keys, wrong types) and semantics
here (every run any figure asks for must resolve: K a multiple of L, N divisible by B, model
width divisible by the head count, ...). Errors name the config key.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import jsonschema
import yaml

from mmicl.figures import FIGURE_STAGE, FIGURES
from mmicl.specs import TrainConfig, resolve
from mmicl.specs.train import from_mapping

TIERS = ("smoke", "laptop", "paper")


class ConfigError(ValueError):
    """A configuration problem, with the offending key in the message."""


def deep_merge(base: Mapping, override: Mapping) -> dict:
    """Recursively merge `override` into a copy of `base` (mappings merge, all else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_config_file(path: str | Path) -> dict:
    """A YAML config file as a dict; a malformed file raises ConfigError naming the file and
    the line and column of the problem."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: not valid YAML ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _format_path(path) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def validate_schema(config: Mapping, schema_path: str | Path) -> None:
    """Check `config` against the JSON schema; raise ConfigError naming the first bad keys."""
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
            messages.append(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                            f"expected one of: {', '.join(allowed)}")
        elif err.validator == "enum":
            messages.append(f"{where}: {err.instance!r} is not allowed; expected one of: "
                            f"{', '.join(map(str, err.validator_value))}")
        else:
            messages.append(f"{where}: {err.message}")
    raise ConfigError("invalid config:\n  " + "\n  ".join(messages))


def tier_config(config: Mapping) -> dict:
    """The active tier's settings: `defaults` deep-merged with `tiers[tier]`, semantically
    checked, plus the top-level `tier`, `device` and `results`."""
    tier = config.get("tier", "laptop")
    tiers = config.get("tiers", {})
    if tier not in tiers:
        raise ConfigError(f"tier={tier!r} is not defined; expected one of: {', '.join(tiers)}")
    merged = deep_merge(config.get("defaults", {}), tiers[tier] or {})
    only = merged.pop("figures_only", None)
    if only is not None:  # a tier that builds a few figures (e.g. the `holds` tier)
        unknown = [name for name in only if name not in merged.get("figures", {})]
        if unknown:
            raise ConfigError(f"tiers.{tier}.figures_only: unknown figure(s) "
                              f"{', '.join(unknown)}; the tier's figures are: "
                              f"{', '.join(merged.get('figures', {}))}")
        merged["figures"] = {k: v for k, v in merged["figures"].items() if k in only}
    merged["tier"] = tier
    merged["device"] = resolve_device(config.get("device", "cpu"))
    merged["results"] = config.get("results", "results")
    check_tier(merged)
    # figures whose data this machine lacks (Mini-ImageNet without a root) are left out, with
    # one line each in `skipped_figures` (printed by the workflow); configured roots are checked
    from mmicl.plan.images import check_image_roots, without_unavailable

    merged, merged["skipped_figures"] = without_unavailable(merged)
    try:
        check_image_roots(merged)
    except ValueError as exc:
        raise ConfigError(f"tiers.{tier}: {exc}") from None
    return merged


def resolve_device(device: str) -> str:
    """`auto`: cuda when this host has an NVIDIA GPU (seen without importing torch), else cpu.
    On a cluster whose login node has no GPU, say `device: cuda` explicitly."""
    if device != "auto":
        return device
    has_gpu = Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir()
    return "cuda" if has_gpu else "cpu"


def check_tier(tier: Mapping) -> None:
    """Semantic checks of every run any figure asks for: stops before a job is scheduled."""
    from mmicl.plan.runs import PlanError, figure_runs

    where = f"tiers.{tier['tier']}"
    for key in ("train", "train2"):
        if key in tier:
            try:
                from_mapping(TrainConfig, tier[key], f"{where}.{key}")
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
    findings, readings = tier.get("findings", {}), tier.get("interventions", {})
    for kind in ("knockout", "zeroing"):
        chosen = findings.get(f"{kind}_reading")
        if chosen is not None and chosen not in readings.get(kind, []):
            raise ConfigError(f"{where}.findings.{kind}_reading={chosen!r} is not among "
                              f"{where}.interventions.{kind}={readings.get(kind, [])}: the "
                              f"findings read a reading analyze_stage2 computes")
    for name in tier.get("figures", {}):
        if name not in FIGURES:
            raise ConfigError(f"{where}.figures: unknown figure {name!r}; expected one of: "
                              f"{', '.join(FIGURES)}")
        if FIGURE_STAGE[name] == 0:
            continue  # analysis figures read runs that other figures (or fig6's defaults) train
        try:
            for spec in figure_runs(tier, name):
                resolve(spec)
        except PlanError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"{where}.figures.{name}: {exc}") from None
