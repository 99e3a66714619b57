"""Interventions on trained models (protocol §3.5, our reconstruction: the authors' notebooks
were not released): head knockout and modality zeroing, each under several readings, evaluated
on the fixed test sets through the model adapter.

Knockout (Table 2's PH = every head of the first layer, IH = every head of the last layer):
  zero     the heads' value mixes are 0 at every position, before Wo (TransformerLens and the
           authors' MLLM hook): for one head per layer the whole attention branch
  uniform  the heads attend uniformly over the keys they may see
  mean     the heads' value mixes are replaced by their mean over the test set's sequences

Modality zeroing (M1 = the modality the decoder was pretrained on, M2 = the new one):
  items    the modality's items and query are zero in the input content (M2: the raw inputs,
           equivalent to zero tokens since the projector has no bias)
  tokens   every token of the modality's vocabulary: for M1 its items, query and the label
           tokens (the labels are M1 vectors); for M2, which has no label tokens, = items
  whole    whole residual tokens, APE position columns included (RoPE/ALiBi: same as items)
  query    only the modality's query item
  mean     items and query replaced by their mean over the test set at each position
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import pandas as pd
import torch

from mmicl.analysis.evaluate import evaluate
from mmicl.analysis.scores import positions_mask

KNOCKOUT_READINGS = ("zero", "uniform", "mean")
ZEROING_READINGS = ("items", "tokens", "whole", "query", "mean")
DEFAULT_READINGS = {"knockout": ["zero"], "zeroing": ["items"]}


def _positions_of(adapter, batch, modality: str, reading: str) -> torch.Tensor:
    """(S, n) positions a zeroing reading edits in `batch`."""
    pos = adapter.positions(batch)
    query = (pos.queries[modality] if modality in pos.queries else pos.query)[:, None]
    if reading == "query":
        return query
    chosen = [pos.items[modality], query]
    if reading == "tokens":
        chosen.append(pos.labels)
    return torch.cat(chosen, dim=1)


def _zero_content(batch, modality: str, positions: torch.Tensor, mean: bool):
    """A copy of `batch` whose `modality` items at `positions` are zero (or the set's mean)."""
    if modality == "m2":  # raw M2 inputs (slot i = pair i, slot N = the query)
        N = batch.m2_inputs.shape[1] - 1
        slots = (positions - 1) // 3
        slots = torch.where(positions == 3 * N + 1, torch.full_like(slots, N), slots)
        return dataclasses.replace(batch, m2_inputs=_fill(batch.m2_inputs, slots, mean))
    return dataclasses.replace(batch, inputs=_fill(batch.inputs, positions, mean))


def _fill(x: torch.Tensor, index: torch.Tensor, mean: bool) -> torch.Tensor:
    mask = positions_mask(index, x.shape[1])[..., None]
    fill = x.mean(0, keepdim=True).expand_as(x) if mean else torch.zeros_like(x)
    return torch.where(mask, fill, x)


def zeroing_cases(adapter, batch, reading: str) -> dict[str, tuple]:
    """name -> (edited batch, or the batch and a whole-token mask) for each modality."""
    if reading not in ZEROING_READINGS:
        raise ValueError(f"zeroing reading {reading!r} is unknown; expected one of: "
                         f"{', '.join(ZEROING_READINGS)}")
    cases = {}
    for modality in ("m2", "m1"):
        # the label tokens belong to M1's vocabulary: M2's "tokens" are its items and query
        how = "items" if reading == "mean" or (reading, modality) == ("tokens", "m2") else reading
        where = _positions_of(adapter, batch, modality, how)
        if reading == "whole":
            # the positions are the same in every sequence of our layouts: one (T,) mask
            cases[f"zero_{modality}"] = (batch, positions_mask(where, batch.inputs.shape[1])[0])
        else:
            cases[f"zero_{modality}"] = (_zero_content(batch, modality, where, reading == "mean"),
                                         None)
    return cases


def knockout_heads(n_layers: int, n_heads: int) -> dict[str, list[tuple[int, int]]]:
    """PH = every head of the first layer, IH = every head of the last layer (0-based)."""
    return {"ph_knockout": [(0, h) for h in range(n_heads)],
            "ih_knockout": [(n_layers - 1, h) for h in range(n_heads)]}


def run_interventions(adapter, test_sets: Mapping, modulus: int,
                      splits: Sequence[str] = ("IC",),
                      readings: Mapping[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Accuracy and loss of the full model and of every (intervention, reading) on the chosen
    evaluation sets. Columns: intervention, reading, split, loss, accuracy."""
    readings = dict(DEFAULT_READINGS if readings is None else readings)
    rows = []

    def record(name, reading, results):
        rows.extend({"intervention": name, "reading": reading, "split": split, **m}
                    for split, m in results.items())

    model = adapter.model
    sets = {s: test_sets[s] for s in splits}
    record("full", "none", evaluate(model, sets, modulus))
    for mode in readings.get("knockout", []):
        if mode not in KNOCKOUT_READINGS:
            raise ValueError(f"knockout reading {mode!r} is unknown; expected one of: "
                             f"{', '.join(KNOCKOUT_READINGS)}")
        for name, heads in knockout_heads(adapter.n_layers, adapter.n_heads).items():
            for split, batch in sets.items():
                with adapter.ablate_heads(heads, mode, reference=batch):
                    record(name, mode, evaluate(model, {split: batch}, modulus))
    if not getattr(adapter, "multimodal", False):
        return pd.DataFrame(rows)
    for reading in readings.get("zeroing", []):
        for split, batch in sets.items():
            for name, (edited, whole) in zeroing_cases(adapter, batch, reading).items():
                if whole is None:
                    record(name, reading, evaluate(model, {split: edited}, modulus))
                else:
                    with adapter.edit_tokens(whole):
                        record(name, reading, evaluate(model, {split: edited}, modulus))
    return pd.DataFrame(rows)
