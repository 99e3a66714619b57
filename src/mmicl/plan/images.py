"""Image data and encoder pretraining in the plan (torch-free; docs/images.md).

* Where a run's images come from (`data_root`): the glyph set the workflow renders into
  results/<tier>/data/glyphs, `images.omniglot_root`, or `images.mini_imagenet_root`
  (else $MINI_IMAGENET_ROOT).
* Which figures a tier cannot build (`unavailable_figures`): Mini-ImageNet or real-Omniglot
  figures when no root is configured (one printed line each; they are then not part of
  `all`). A root that is configured but missing or in another layout stops the workflow
  (`check_image_roots`).
* Encoder pretraining runs (`EncoderRun`): one per (encoder config, data, world or image
  classes, seed, pretraining settings), shared by every Stage-2 run that loads it, trained once.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mmicl.models.encoder_specs import config_to_dict
from mmicl.specs import RunSpec, resolve
from mmicl.specs.images import IMAGE_SOURCES, image_keys

MINI_IMAGENET_ENV = "MINI_IMAGENET_ROOT"
OMNIGLOT_LAYOUT = "<root>/omniglot-py/images_{background,evaluation}/<Alphabet>/<character>/*.png"
PRETRAIN_DEFAULTS = {"iterations": 500, "lr": 1e-3, "weight_decay": 1e-6, "batch_size": 128,
                     "eps0": 0.1, "eval_every": 100}


def glyph_root(tier: Mapping) -> str:
    return f"{tier['results']}/{tier['tier']}/data/glyphs"


def glyph_manifest(tier: Mapping) -> str:
    """The file the glyph-rendering rule writes last (inside the tree it renames into place)."""
    return f"{glyph_root(tier)}/omniglot-py/glyphs.json"


def mini_imagenet_root(tier: Mapping) -> str:
    return tier.get("images", {}).get("mini_imagenet_root") or os.environ.get(
        MINI_IMAGENET_ENV, "")


def data_root(tier: Mapping, m2_data: str) -> str | None:
    """The folder a run of `m2_data` reads its images from (None: Gaussian M2)."""
    if m2_data == "glyphs":
        return glyph_root(tier)
    if m2_data == "omniglot":
        return tier.get("images", {}).get("omniglot_root", "")
    if m2_data == "miniimagenet":
        return mini_imagenet_root(tier)
    return None


def figure_sources(tier: Mapping, figure: str) -> set[str]:
    from mmicl.plan.runs import figure_runs

    return {image_keys(s.params2)["m2_data"] for s in figure_runs(tier, figure) if s.stage == 2}


def unavailable_figures(tier: Mapping) -> dict[str, str]:
    """figure -> why it is skipped: Mini-ImageNet figures without a configured root."""
    from mmicl.figures import FIGURE_STAGE

    out = {}
    for name in tier.get("figures", {}):
        if FIGURE_STAGE.get(name) != 2:
            continue
        sources = figure_sources(tier, name)
        if "miniimagenet" in sources and not mini_imagenet_root(tier):
            out[name] = (f"{name} skipped: no Mini-ImageNet (set images.mini_imagenet_root or "
                         f"${MINI_IMAGENET_ENV}; docs/images.md says how to get it)")
        elif "omniglot" in sources and not data_root(tier, "omniglot"):
            out[name] = (f"{name} skipped: no Omniglot (set images.omniglot_root, or "
                         f"m2_data: glyphs for the offline glyph set; docs/images.md)")
    return out


def without_unavailable(tier: Mapping) -> tuple[dict, list[str]]:
    """The tier without the figures it cannot build, and one line per skipped figure."""
    skipped = unavailable_figures(tier)
    figures = {k: v for k, v in tier.get("figures", {}).items() if k not in skipped}
    return {**tier, "figures": figures}, list(skipped.values())


def check_image_roots(tier: Mapping) -> None:
    """Stop before training when a configured image root is missing or in another layout."""
    from mmicl.plan.runs import all_runs

    sources = {image_keys(s.params2)["m2_data"] for s in all_runs(tier) if s.stage == 2}
    if "omniglot" in sources:
        root = data_root(tier, "omniglot")
        if not root:
            raise ValueError("m2_data=omniglot needs images.omniglot_root (the folder holding "
                             "omniglot-py/; docs/images.md says how to get Omniglot)")
        check_omniglot_layout(root)
    if "miniimagenet" in sources:
        root = Path(mini_imagenet_root(tier))
        if not root.is_dir():
            raise ValueError(f"Mini-ImageNet root {root} (images.mini_imagenet_root or "
                             f"${MINI_IMAGENET_ENV}) does not exist; docs/images.md says how to "
                             f"build it from ImageNet")


def check_omniglot_layout(root: str) -> None:
    """A missing folder, or one without the Omniglot layout, named with what is expected."""
    path = Path(root)
    if not path.is_dir():
        raise ValueError(f"images.omniglot_root={root!r} does not exist; Omniglot is never "
                         f"downloaded here: get images_background.zip and images_evaluation.zip "
                         f"(github.com/brendenlake/omniglot) and unzip them into "
                         f"{path}/omniglot-py/ (docs/images.md)")
    for split in ("images_background", "images_evaluation"):
        if not (path / "omniglot-py" / split).is_dir():
            raise ValueError(f"{path}: no omniglot-py/{split}; expected the layout "
                             f"{OMNIGLOT_LAYOUT}")


# --------------------------------------------------------------------------------------------
# encoder pretraining runs


@dataclass(frozen=True)
class EncoderRun:
    """One encoder pretraining: `encoder` (config dict), `m2_data`, `world` (Gaussian data: the
    multimodal world of the Stage-2 run) or None, the image classes (first K), seed, settings."""

    tier: str
    encoder: dict
    m2_data: str
    world: tuple | None
    K: int
    seed: int
    settings: dict
    device: str = "cpu"

    @property
    def run(self) -> str:
        """Readable id: kind, data, class count, feature size, steps, and a short hash of
        everything else (the full spec is in config.json)."""
        text = json.dumps({"encoder": self.encoder, "world": self.world,
                           "settings": self.settings}, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        width = self.encoder.get("dim", self.encoder.get("output_dim"))
        data = self.m2_data
        if self.world is not None:
            data += f"_K1={self.world[1]}_D2={self.world[6]}"
        return (f"{self.encoder['kind']}_{data}_K={self.K}_out={width}"
                f"_steps={self.settings['iterations']}_{digest}")

    def to_dict(self) -> dict:
        return {"tier": self.tier, "encoder": self.encoder, "m2_data": self.m2_data,
                "world": list(self.world) if self.world else None, "K": self.K,
                "seed": self.seed, "settings": self.settings, "device": self.device,
                "run": self.run}

    @classmethod
    def from_dict(cls, data: Mapping) -> "EncoderRun":
        world = data.get("world")
        return cls(data["tier"], dict(data["encoder"]), data["m2_data"],
                   tuple(world) if world else None, int(data["K"]), int(data["seed"]),
                   dict(data["settings"]), data.get("device", "cpu"))


def encoder_dir(results: str, run: EncoderRun) -> str:
    return f"{results}/{run.tier}/encoders/{run.run}/seed={run.seed}"


ENCODER_FILES = ("encoder.pt", "curve.parquet", "config.json")


def encoder_run(tier: Mapping, spec: RunSpec) -> EncoderRun | None:
    """The pretraining run a Stage-2 run loads its encoder from (None: no encoder, or random)."""
    if spec.stage != 2:
        return None
    keys = image_keys(spec.params2)
    resolved = resolve(spec)
    if resolved.encoder is None or not keys["encoder_pretrained"]:
        return None
    settings = {**PRETRAIN_DEFAULTS, **tier.get("encoder_pretrain", {})}
    data = keys["m2_data"]
    w = resolved.world
    world = None if data in IMAGE_SOURCES else (w.seed, w.K1, w.L1, w.D1, w.K2, w.L2, w.D2)
    if data in IMAGE_SOURCES:
        settings = {**settings, "eps0": 0.0}  # images: the authors' eps0 = 0 encoder
    cfg = config_to_dict(resolved.encoder)
    return EncoderRun(tier["tier"], cfg, data, world, cfg["num_classes"], spec.seed, settings,
                      tier["device"])


def all_encoder_runs(tier: Mapping) -> list[EncoderRun]:
    from mmicl.plan.runs import all_runs

    runs = {}
    for spec in all_runs(tier):
        run = encoder_run(tier, spec)
        if run is not None:
            runs[(run.run, run.seed)] = run
    return list(runs.values())
