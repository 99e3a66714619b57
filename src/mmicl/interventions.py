"""Interventions on trained models (protocol §3.5, our reconstruction — the authors' notebooks
were not released): head knockout and modality zeroing, evaluated on the fixed test sets.

Head knockout zeroes a head's value mix *before* the output projection at every position (the
TransformerLens convention and the authors' MLLM hook): for one head per layer that removes the
whole attention branch. In the 2-layer × 1-head model the layer-1 head is the previous-token head
(PH) and the layer-2 head the induction head (IH); with several heads per layer we knock out every
head of the layer. Modality zeroing sets the M1 tokens (items and query) or the raw M2 inputs to
zero; the projector has no bias, so the latter equals zero M2 tokens.
"""

from __future__ import annotations

import pandas as pd
import torch

from mmicl.evaluate import evaluate


def knockout_mask(n_layers: int, n_heads: int, heads: list[tuple[int, int]]) -> torch.Tensor:
    """(n_layers, n_heads) multiplier: 0 for the listed (layer, head) pairs (0-based), else 1."""
    mask = torch.ones(n_layers, n_heads)
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"head (layer={layer}, head={head}) outside {n_layers}x{n_heads}")
        mask[layer, head] = 0.0
    return mask


def intervention_suite(n_layers: int, n_heads: int, multimodal: bool) -> dict[str, dict]:
    """name -> keyword arguments for the model's forward. PH = first layer, IH = last layer."""
    layer_heads = lambda layer: [(layer, h) for h in range(n_heads)]  # noqa: E731
    suite = {
        "full": {},
        "ph_knockout": {"head_mask": knockout_mask(n_layers, n_heads, layer_heads(0))},
        "ih_knockout": {"head_mask": knockout_mask(n_layers, n_heads, layer_heads(n_layers - 1))},
    }
    if multimodal:
        suite["zero_m2"] = {"zero_m2": True}
        suite["zero_m1"] = {"zero_m1": True}
    return suite


def run_interventions(model: torch.nn.Module, test_sets: dict, n_labels: int,
                      splits: tuple[str, ...] = ("IC",)) -> pd.DataFrame:
    """Accuracy and loss of every intervention on the chosen evaluation sets."""
    decoder = getattr(model, "decoder", model)
    device = next(model.parameters()).device
    suite = intervention_suite(decoder.cfg.n_layers, decoder.cfg.n_heads, hasattr(model, "decoder"))
    rows = []
    for name, kwargs in suite.items():
        kwargs = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in kwargs.items()}
        sets = {s: test_sets[s] for s in splits}
        for split, m in evaluate(model, sets, n_labels, **kwargs).items():
            rows.append({"intervention": name, "split": split, **m})
    return pd.DataFrame(rows)
