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


@torch.no_grad()
def modality_alignment(model, batch) -> dict[str, float]:
    """CKA and mean L2 distance between projector(M2 item) and the M1 item of the same pair,
    over every context pair of `batch` (a MultimodalBatch)."""
    N = batch.m2_inputs.shape[1] - 1
    projected = model.projector(batch.m2_inputs[:, :N]).reshape(-1, batch.inputs.shape[-1])
    m1 = batch.inputs[:, 0 : 3 * N : 3].reshape(-1, batch.inputs.shape[-1])
    return {
        "cka": linear_cka(projected, m1),
        "l2": (projected - m1).norm(dim=-1).mean().item(),
        "projected_norm": projected.norm(dim=-1).mean().item(),
        "m1_norm": m1.norm(dim=-1).mean().item(),
    }
