"""Accuracy and loss on the fixed evaluation sets, and mean attention maps for figures.

Evaluation sets (§1.7 of the protocol): `Test` (training distribution), `IC` (novel classes: ICL),
`IC2` (swapped labels: the answer is the label the context shows, (y+1) mod L), `IW` (i.i.d.
context: in-weights). Accuracy is argmax agreement with `expected_target`.
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch
import torch.nn.functional as F

from mmicl.data.sequences import expected_target


def model_inputs(batch) -> tuple:
    """The positional arguments of the model a batch is for: (inputs, pos_offsets) for a
    Decoder, (inputs, m2_inputs, pos_offsets) for a MultimodalDecoder."""
    if hasattr(batch, "m2_inputs"):
        return batch.inputs, batch.m2_inputs, batch.pos_offsets
    return batch.inputs, batch.pos_offsets


def forward(model: torch.nn.Module, batch, **kwargs):
    """Call a unimodal Decoder or a MultimodalDecoder on its kind of batch."""
    return model(*model_inputs(batch), **kwargs)


def slice_batch(batch, sl: slice):
    """The same kind of batch restricted to sequences `sl` (every field is batch-first)."""
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name)[sl]
                                         for f in dataclasses.fields(batch)})


def eval_chunk(device) -> int:
    """Sequences per evaluation forward: on a CPU 128 keep the (chunk, T, dim) activations in
    cache (1,000 Stage-2 sequences: 57 ms in chunks of 128, 94 ms in one; the same logits,
    sequences are independent), elsewhere large batches fill the device."""
    return 128 if torch.device(device).type == "cpu" else 4096


@torch.no_grad()
def logits_of(model: torch.nn.Module, batch, chunk: int | None = None) -> torch.Tensor:
    """Last-position logits of every sequence, in chunks (default: `eval_chunk`)."""
    n = batch.inputs.shape[0]
    chunk = chunk or eval_chunk(batch.inputs.device)
    return torch.cat([forward(model, slice_batch(batch, slice(i, i + chunk)))
                      for i in range(0, n, chunk)])


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: dict, n_labels: int) -> dict[str, dict]:
    """{set name: {"loss": float, "accuracy": float}} for every evaluation set (under whatever
    hooks an analysis has registered on the model)."""
    was_training = model.training
    model.eval()
    results = {}
    for name, batch in batches.items():
        logits = logits_of(model, batch)
        target = expected_target(batch, name, n_labels)
        results[name] = {
            "loss": F.cross_entropy(logits, target).item(),
            "accuracy": (logits.argmax(-1) == target).float().mean().item(),
        }
    model.train(was_training)
    return results


@torch.no_grad()
def mean_attention(model: torch.nn.Module, batch, n_sequences: int) -> pd.DataFrame:
    """Attention probabilities averaged over the first `n_sequences` of `batch`, as a tidy table
    with columns layer (1-based, as in the paper), head, query, key, weight."""
    was_training = model.training
    model.eval()
    n = min(n_sequences, batch.inputs.shape[0])
    _, attn = forward(model, slice_batch(batch, slice(0, n)), return_attn=True)
    model.train(was_training)
    mean = attn.mean(dim=1).cpu()  # (layers, heads, T, T)
    n_layers, n_heads, T, _ = mean.shape
    index = torch.cartesian_prod(
        torch.arange(n_layers), torch.arange(n_heads), torch.arange(T), torch.arange(T)
    )
    return pd.DataFrame({
        "layer": (index[:, 0] + 1).numpy(),
        "head": index[:, 1].numpy(),
        "query": index[:, 2].numpy(),
        "key": index[:, 3].numpy(),
        "weight": mean.reshape(-1).numpy(),
    })
