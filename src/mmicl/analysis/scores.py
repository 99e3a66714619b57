"""Head-score primitives shared by the synthetic indicators and the MLLM head analysis.

Every function takes attention probabilities ``attn`` shaped [layer, batch, head, query, key]
and returns per-sequence values shaped [layer, batch, head]; the caller averages over sequences
(or over examples) as its definition says. Vectorised over layers, sequences and heads.
"""

from __future__ import annotations

import torch


def previous_token(attn: torch.Tensor, offset: int = 1,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over query rows t of A[t, t - offset].

    rows: optional (S, T) bool mask of the query rows to average over (rows t < offset never
    count); None = every row t = offset .. T-1 (the paper's PHStrength^(offset)). A sequence
    with no selected row scores 0.
    """
    if offset < 1:
        raise ValueError(f"offset={offset} must be >= 1")
    diag = attn.diagonal(offset=-offset, dim1=-2, dim2=-1)  # (L, S, H, T - offset): rows t>=offset
    if rows is None:
        return diag.mean(-1)
    selected = rows[:, offset:].to(attn.dtype)  # (S, T - offset)
    if selected.shape[-1] != diag.shape[-1]:
        raise ValueError(f"rows has {rows.shape[-1]} positions; attention has {attn.shape[-1]}")
    count = selected.sum(-1).clamp(min=1)
    return (diag * selected[None, :, None]).sum(-1) / count[None, :, None]


def query_row(attn: torch.Tensor, query: torch.Tensor | int) -> torch.Tensor:
    """(L, S, H, T): the attention row of each sequence's query position (an int or (S,))."""
    if isinstance(query, int):
        return attn[..., query, :]
    index = query.to(attn.device).view(1, -1, 1, 1, 1).expand(*attn.shape[:3], 1, attn.shape[-1])
    return attn.gather(3, index).squeeze(3)


def masked_mean(row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(L, S, H) mean of row (L, S, H, T) over the keys where mask (S, T) is true; an empty
    mask gives 0 (the reference's convention: the sequence still counts in the batch mean)."""
    weights = mask.to(row.dtype)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1)
    return (row * weights[None, :, None, :]).sum(-1)


def gather_keys(row: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """(L, S, H, n): the row's attention to the keys at positions (S, n) of each sequence."""
    index = positions.to(row.device)[None, :, None, :].expand(*row.shape[:3], positions.shape[-1])
    return row.gather(-1, index)


def contrast(row: torch.Tensor, match: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Mean attention to the `match` keys minus mean attention to the `other` keys (both (S, T)
    bool): IndStrength (matching vs non-matching label tokens) and the MLLM IH score (answer
    tokens vs every other token) are both this."""
    return masked_mean(row, match) - masked_mean(row, other)


def positions_mask(positions: torch.Tensor, T: int, select: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """(S, T) bool: true at positions (S, n) of each sequence, restricted to the columns where
    `select` (S, n) is true."""
    S = positions.shape[0]
    mask = torch.zeros(S, T, dtype=torch.bool, device=positions.device)
    values = torch.ones_like(positions, dtype=torch.bool) if select is None else select.bool()
    return mask.scatter(1, positions, values)
