"""The model configurations, free of torch so that planning the workflow (mmicl.config, the
Snakefile) does not import it."""

from __future__ import annotations

import math
from dataclasses import dataclass

PE_KINDS = ("ape", "rope", "alibi", "hybrid")
ROPE_IMPLS = ("reference", "standard")
MLP_VARIANTS = ("reference", "swiglu")
PROJECTORS = ("small", "large")


@dataclass(frozen=True)
class DecoderConfig:
    content_dim: int  # D: width of the content part of each token
    n_labels: int  # L: output classes
    n_layers: int = 2
    n_heads: int = 1
    pe: str = "rope"  # ape | rope | alibi | hybrid (APE block + RoPE)
    rope_impl: str = "reference"  # reference: the authors' non-rotation; standard: a true rotation
    rope_theta: float = 10000.0
    rms_norm: bool = True  # False = no normalisation anywhere (as in the reference)
    norm_eps: float = 1e-5
    mlp_variant: str = "reference"  # reference: W3 SiLU((W1x)*(W2x)); swiglu: W3 (SiLU(W1x)*(W2x))
    n_max: int = 32  # APE block has 2*n_max+1 columns (hybrid 2*n_max+2), as in the reference
    max_seq_len: int = 128  # length of the RoPE tables

    def __post_init__(self):
        for key, allowed in (("pe", PE_KINDS), ("rope_impl", ROPE_IMPLS),
                             ("mlp_variant", MLP_VARIANTS)):
            value = getattr(self, key)
            if value not in allowed:
                what = "position encoding" if key == "pe" else key
                raise ValueError(
                    f"{key}={value!r} is not a known {what}; expected one of: {', '.join(allowed)}"
                )
        for key in ("content_dim", "n_labels", "n_layers", "n_heads", "n_max", "max_seq_len"):
            value = getattr(self, key)
            # bool is an int subclass: n_heads=True is a typo, not one head
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{key}={value!r} must be a positive integer")
        for key in ("rope_theta", "norm_eps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{key}={value!r} must be a positive number")
        if self.dim % self.n_heads:
            fits = self.n_heads * math.ceil(self.dim / self.n_heads) - self.n_pos_columns
            raise ValueError(
                f"n_heads={self.n_heads} does not divide the model width {self.dim} "
                f"(= {self.n_pos_columns} position columns + content_dim {self.content_dim}); "
                f"e.g. content_dim={fits} would work"
            )
        if self.uses_rope and self.head_dim % 2:
            raise ValueError(
                f"pe={self.pe!r} applies RoPE, which pairs coordinates and needs an even head_dim; "
                f"got head_dim={self.head_dim} (model width {self.dim} / n_heads={self.n_heads})"
            )

    @property
    def n_pos_columns(self) -> int:
        return {"ape": 2 * self.n_max + 1, "hybrid": 2 * self.n_max + 2}.get(self.pe, 0)

    @property
    def dim(self) -> int:
        return self.n_pos_columns + self.content_dim

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def uses_rope(self) -> bool:
        return self.pe in ("rope", "hybrid")


@dataclass(frozen=True)
class MultimodalConfig:
    decoder: DecoderConfig
    m2_dim: int  # D2
    projector: str = "small"  # small: W2 GELU(W1 z); large: W3 GELU(W2 GELU(W1 z))

    def __post_init__(self):
        if self.projector not in PROJECTORS:
            raise ValueError(
                f"projector={self.projector!r} is unknown; expected one of: {', '.join(PROJECTORS)}"
            )
        if not isinstance(self.m2_dim, int) or self.m2_dim <= 0:
            raise ValueError(f"m2_dim={self.m2_dim!r} must be a positive integer")
