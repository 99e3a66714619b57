"""Stage-2 model: a projector maps M2 features into the M1 embedding space (protocol §2.6).

Sequence layout (length 3N+2): M1 item at 3i, M2 slot at 3i+1, label at 3i+2, then the M1 query
at 3N and the M2 query slot at 3N+1, where the prediction is read. The projected M2 vectors
overwrite the (zero) M2 slots, then the Stage-1 decoder runs unchanged; its parameters live under
`decoder.` so a Stage-1 state dict loads into `model.decoder` as is.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmicl.models.decoder import Decoder, DecoderConfig  # noqa: F401
from mmicl.models.specs import PROJECTORS, MultimodalConfig  # noqa: F401


class Projector(nn.Module):
    """P(z) = W2 GELU(W1 z); no biases, so P(0) = 0 (zeroing raw M2 = zeroing its token)."""

    def __init__(self, m2_dim: int, d1: int, depth: int = 2):
        super().__init__()
        dims = [m2_dim] + [d1] * depth
        self.linears = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims, dims[1:]))
        for lin in self.linears:
            nn.init.normal_(lin.weight, std=0.02)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        for i, lin in enumerate(self.linears):
            z = lin(z) if i == 0 else lin(F.gelu(z))
        return z


def m2_slots(N: int, device=None) -> torch.Tensor:
    """Positions of the N context M2 slots (3i+1) and of the M2 query slot (3N+1)."""
    return torch.cat([torch.arange(N, device=device) * 3 + 1,
                      torch.tensor([3 * N + 1], device=device)])


class MultimodalDecoder(nn.Module):
    def __init__(self, cfg: MultimodalConfig):
        super().__init__()
        self.cfg = cfg
        self.decoder = Decoder(cfg.decoder)
        depth = 2 if cfg.projector == "small" else 3
        self.projector = Projector(cfg.m2_dim, cfg.decoder.content_dim, depth)

    def combine(self, inputs: torch.Tensor, m2_inputs: torch.Tensor) -> torch.Tensor:
        """(S, 3N+2, D1) content with the projected M2 items written into slots 3i+1 and 3N+1."""
        N = (inputs.shape[1] - 2) // 3
        projected = self.projector(self.m2_features(m2_inputs))  # (S, N+1, D1)
        return inputs.index_copy(1, m2_slots(N, inputs.device), projected.to(inputs.dtype))

    def m2_features(self, m2_inputs: torch.Tensor) -> torch.Tensor:
        """What the projector reads: the M2 features as given (an encoder model overrides it)."""
        return m2_inputs

    def forward(self, inputs, m2_inputs, pos_offsets=None, return_attn=False, validate=True):
        content = self.combine(inputs, m2_inputs)
        return self.decoder(content, pos_offsets, return_attn=return_attn, validate=validate)

    def freeze_decoder(self, include_head: bool = False) -> None:
        """The authors' Stage-2 freeze: the decoder blocks stop learning while the final norm and
        the output head stay trainable (§9.11); include_head=True freezes those too."""
        for name, p in self.decoder.named_parameters():
            if name.startswith("layers.") or include_head:
                p.requires_grad_(False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
