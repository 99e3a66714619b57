"""A trained run read back from its directory: model, evaluation sets, layout and label modulus.

Everything is rebuilt from the run's own ``config.json`` (the resolved spec it was trained with),
so analysis steps never re-derive a run from the workflow config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from mmicl import io
from mmicl.indicators import Layout


@dataclass
class TrainedRun:
    run_dir: Path
    spec: dict  # the "meta" of config.json: run, seed, params (Stage 1) or params1/params2
    model: torch.nn.Module  # weights of model.pt, eval mode
    test_sets: dict  # name -> Batch / MultimodalBatch
    layout: Layout
    modulus: int  # label modulus for IC2 targets (evaluate's n_labels)

    @property
    def stage(self) -> int:
        return 2 if "params2" in self.spec else 1

    @property
    def family(self) -> str:
        return "multimodal" if self.stage == 2 else "unimodal"


def read_spec(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text())["meta"]
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: missing or unreadable run config ({exc})") from None


def load_run(run_dir: str | Path, device: str = "cpu", weights: str = "model.pt") -> TrainedRun:
    """The run in `run_dir`. `weights` names the state dict to load (relative to the run)."""
    from mmicl.config import stage1_specs, stage2_specs

    run_dir = Path(run_dir)
    spec = read_spec(run_dir)
    if "params2" in spec:
        from mmicl.data.multimodal import load_multimodal_batches
        from mmicl.models.multimodal import MultimodalDecoder

        world, seq, cfg = stage2_specs(spec["params1"], spec["params2"])
        model = MultimodalDecoder(cfg)
        test_sets = load_multimodal_batches(run_dir / "testsets.pt", device=device)
        layout = Layout("multimodal", seq.N)
        joint = spec["params2"]["label_mode"] == "joint"
        modulus = world["L1"] if joint else world["L2"]
    else:
        from mmicl.data.sequences import load_batches
        from mmicl.models.decoder import Decoder

        _, seq, cfg = stage1_specs(spec["params"])
        model = Decoder(cfg)
        test_sets = load_batches(run_dir / "testsets.pt", device=device)
        layout = Layout("unimodal", seq.N)
        modulus = cfg.n_labels
    if weights:
        load_weights(model, io.load_torch(run_dir / weights, map_location=device),
                     run_dir / weights)
    model.to(device).eval()
    return TrainedRun(run_dir, spec, model, test_sets, layout, modulus)


def load_weights(model: torch.nn.Module, state: dict, where) -> None:
    """load_state_dict with an error that names the file."""
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: weights do not fit the run's model ({exc})") from None
