"""A trained run read back from its folder: spec, model, evaluation sets and curve.

Everything is rebuilt from the run's own ``config.json`` (the RunSpec it was trained with), so
analysis steps never re-derive a run from the workflow config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from mmicl import io
from mmicl.analysis.ours import DecoderAdapter
from mmicl.specs import RunSpec, resolve
from mmicl.specs.run import read_spec


@dataclass
class TrainedRun:
    run_dir: Path
    spec: RunSpec
    model: torch.nn.Module  # weights of model.pt (unless loaded without), eval mode
    test_sets: dict  # name -> Batch / MultimodalBatch
    modulus: int  # label modulus for IC2 targets

    @property
    def family(self) -> str:
        return "multimodal" if self.spec.stage == 2 else "unimodal"

    @property
    def adapter(self) -> DecoderAdapter:
        return DecoderAdapter(self.model)

    def curve(self) -> pd.DataFrame:
        return io.read_parquet(self.run_dir / "curve.parquet")


def build_model(spec: RunSpec) -> torch.nn.Module:
    """A freshly constructed model of the run's shape (weights not loaded)."""
    resolved = resolve(spec)
    if spec.stage == 1:
        from mmicl.models.decoder import Decoder
        return Decoder(resolved.model)
    if resolved.encoder is not None:  # M2 through an encoder (docs/images.md)
        from mmicl.models.encoder_fusion import EncoderFusion
        from mmicl.models.encoders import build_encoder
        from mmicl.specs.images import caches_features, image_keys

        model = EncoderFusion(resolved.model, build_encoder(resolved.encoder),
                              image_keys(spec.params2)["freeze_encoder"])
        # a frozen image encoder with eps2 = 0 trained on cached features: its test sets hold
        # those features (an image run with pixel input keeps no images in testsets.pt)
        model.feature_input = caches_features(spec.params2)
        return model
    from mmicl.models.multimodal import MultimodalDecoder
    return MultimodalDecoder(resolved.model)


def load_run(run_dir: str | Path, device: str = "cpu", weights: str = "model.pt") -> TrainedRun:
    """The run in `run_dir`. `weights` names the state dict to load ("" = none)."""
    from mmicl.data.multimodal import load_multimodal_batches
    from mmicl.data.sequences import load_batches

    run_dir = Path(run_dir)
    spec = read_spec(run_dir)
    model = build_model(spec)
    load = load_batches if spec.stage == 1 else load_multimodal_batches
    test_sets = load(run_dir / "testsets.pt", device=device)
    if weights:
        load_weights(model, io.load_torch(run_dir / weights, map_location=device),
                     run_dir / weights)
    model.to(device).eval()
    return TrainedRun(run_dir, spec, model, test_sets, resolve(spec).modulus)


def load_weights(model: torch.nn.Module, state: dict, where) -> None:
    """load_state_dict with an error that names the file."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: weights do not fit the run's model ({exc})") from None
