"""Accuracy and loss on the fixed evaluation sets, and mean attention maps for figures.

Evaluation sets (§1.7 of the protocol): `Test` (training distribution), `IC` (novel classes: ICL),
`IC2` (swapped labels: the answer is the label the context shows, (y+1) mod L), `IW` (i.i.d.
context: in-weights). Accuracy is argmax agreement with `expected_target`.
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from mmicl.data.sequences import Batch, expected_target


@torch.no_grad()
def logits_of(model: torch.nn.Module, batch: Batch, chunk: int = 1024) -> torch.Tensor:
    """Last-position logits of every sequence, in chunks to bound memory."""
    outs = []
    for start in range(0, batch.inputs.shape[0], chunk):
        sl = slice(start, start + chunk)
        outs.append(model(batch.inputs[sl], batch.pos_offsets[sl]))
    return torch.cat(outs)


@torch.no_grad()
def evaluate(model: torch.nn.Module, batches: dict[str, Batch], n_labels: int) -> dict[str, dict]:
    """{set name: {"loss": float, "accuracy": float}} for every evaluation set."""
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
def mean_attention(model: torch.nn.Module, batch: Batch, n_sequences: int) -> pd.DataFrame:
    """Attention probabilities averaged over the first `n_sequences` of `batch`, as a tidy table
    with columns layer (1-based, as in the paper), head, query, key, weight."""
    was_training = model.training
    model.eval()
    n = min(n_sequences, batch.inputs.shape[0])
    _, attn = model(batch.inputs[:n], batch.pos_offsets[:n], return_attn=True)
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
