"""Alignment of the projected M2 features with the M1 embeddings they are paired with (protocol
§3.5, our reconstruction): linear CKA (Kornblith et al., 2019) and the mean L2 distance, on the
context pairs of held-out sequences of a trained Stage-2 model."""

from __future__ import annotations

import torch


def linear_cka(X: torch.Tensor, Y: torch.Tensor) -> float:
    """Linear CKA between (n, p) and (n, q) representations of the same n examples:
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc."""
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"CKA needs the same examples: {X.shape[0]} vs {Y.shape[0]} rows")
    Xc = (X - X.mean(0)).double()
    Yc = (Y - Y.mean(0)).double()
    cross = (Yc.T @ Xc).norm() ** 2
    return (cross / ((Xc.T @ Xc).norm() * (Yc.T @ Yc).norm())).item()


def modality_alignment(adapter, batch) -> dict[str, float]:
    """CKA and mean L2 distance between the M2 token of each context pair (its projected
    feature) and the M1 item of the same pair, over every context pair of `batch`."""
    embeddings = adapter.embeddings(batch)  # (S, T, D)
    positions = adapter.positions(batch)
    D = embeddings.shape[-1]

    def tokens(modality: str) -> torch.Tensor:
        index = positions.items[modality].to(embeddings.device)
        return embeddings.gather(1, index[..., None].expand(-1, -1, D)).reshape(-1, D)

    m2, m1 = tokens("m2"), tokens("m1")
    return {
        "cka": linear_cka(m2, m1),
        "l2": (m2 - m1).norm(dim=-1).mean().item(),
        "projected_norm": m2.norm(dim=-1).mean().item(),
        "m1_norm": m1.norm(dim=-1).mean().item(),
    }
