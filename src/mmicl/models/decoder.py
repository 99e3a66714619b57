"""The 2-layer decoder of the paper (protocol §2.1-2.5), with the authors' quirks as options.

No token embedding: the input vectors (an optional one-hot position block followed by the content)
are the residual stream. Pre-norm blocks with RMSNorm, attention with APE / RoPE / ALiBi / hybrid
positions, a 3-matrix SiLU MLP, a final RMSNorm and a linear read-out at the last position.

References: Reddy (2023) "The mechanistic basis of data dependence and abrupt learning in an
in-context classification task"; Su et al. (2021) RoPE; Press et al. (2022) ALiBi.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmicl.models.specs import MLP_VARIANTS, PE_KINDS, ROPE_IMPLS, DecoderConfig  # noqa: F401


class RMSNorm(nn.Module):
    """y = x / sqrt(mean(x^2) + eps) * w, computed in float32."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x) * self.weight

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """x / sqrt(mean(x^2) + eps), without the weight (which `Block` folds into the next
        linear layer: (n * w) @ W^T = n @ (W * w)^T, two fewer passes over the activations)."""
        return rms_normalize(x, self.eps)


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / sqrt(mean(x^2) + eps) over the last axis, computed in float32."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x)


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-concatenated cos/sin tables (T, head_dim): [cos(t θ_0..θ_{d/2-1}), same again]."""
    freqs = theta ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float64), freqs)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().float(), angles.sin().float()


def rotate(x: torch.Tensor, impl: str) -> torch.Tensor:
    """The 'rotate-half' partner of x. `reference` pairs even/odd coordinates while the tables pair
    (i, i + d/2): the authors' map is therefore neither orthogonal nor relative (§2.3)."""
    if impl == "reference":
        return torch.cat([-x[..., 1::2], x[..., 0::2]], dim=-1)
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, impl: str) -> torch.Tensor:
    """x: (..., T, head_dim); cos/sin: (T, head_dim). x * cos + rotate(x) * sin."""
    return torch.addcmul(x * cos, rotate(x, impl), sin)


def scaled_linear(lin: nn.Linear, x: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """lin(x * scale) computed as x @ (W * scale)^T + b: the per-feature scale (an RMSNorm
    weight) is folded into the small weight matrix instead of a pass over the activations."""
    if scale is None:
        return lin(x)
    return F.linear(x, lin.weight * scale, lin.bias)


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Press et al.: 2^(-8(h+1)/n) for n a power of two, else the interleaved extension."""

    def power_of_two(n: int) -> list[float]:
        return [2 ** (-8 * (h + 1) / n) for h in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_two(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_two(closest) + extra)


class Attention(nn.Module):
    """Causal multi-head attention; RoPE on q and k, or an ALiBi bias folded into `mask`."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.dim
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        # The reference adds the head mix to the residual directly when there is one head.
        self.wo = nn.Linear(dim, dim, bias=False) if cfg.n_heads > 1 else None
        for lin in (self.wq, self.wk, self.wv, self.wo):
            if lin is not None:
                nn.init.normal_(lin.weight, std=0.02)
        # Hook points (TransformerLens style; identities unless an analysis hooks them): the
        # attention probabilities, and the heads' value mixes before they are concatenated and
        # enter Wo, where a head is ablated (mmicl.analysis.ours).
        self.hook_pattern = nn.Identity()
        self.hook_heads = nn.Identity()

    def forward(self, x, mask, rope, last_only=False, in_scale=None):
        """x: (S, T, dim); mask: (T, T) or (H, T, T) additive; returns output and probabilities.
        last_only: compute the last query position only (enough for the last layer's logits).
        in_scale (dim,): the input is x * in_scale (folded into Wq, Wk, Wv)."""
        S, T, _ = x.shape
        H, hd = self.cfg.n_heads, self.cfg.head_dim
        Tq = 1 if last_only else T
        q = scaled_linear(self.wq, x[:, T - Tq:], in_scale).view(S, Tq, H, hd).transpose(1, 2)
        k, v = (scaled_linear(w, x, in_scale).view(S, T, H, hd).transpose(1, 2)
                for w in (self.wk, self.wv))
        if rope is not None:
            cos, sin = rope
            q = apply_rope(q, cos[T - Tq:T], sin[T - Tq:T], self.cfg.rope_impl)
            k = apply_rope(k, cos[:T], sin[:T], self.cfg.rope_impl)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd) + mask[..., T - Tq:, :]
        probs = self.hook_pattern(torch.softmax(scores.float(), dim=-1).type_as(q))  # (S,H,Tq,T)
        heads = self.hook_heads(probs @ v)  # (S, H, Tq, hd): each head's value mix, before Wo
        out = heads.transpose(1, 2).reshape(S, Tq, H * hd)
        return (self.wo(out) if self.wo is not None else out), probs


class FeedForward(nn.Module):
    """Hidden width = dim; PyTorch's default Linear init (the reference's custom init never runs)."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.variant = cfg.mlp_variant
        self.w1 = nn.Linear(cfg.dim, cfg.dim)
        self.w2 = nn.Linear(cfg.dim, cfg.dim)
        self.w3 = nn.Linear(cfg.dim, cfg.dim)

    def forward(self, x, in_scale=None):
        """in_scale (dim,): the input is x * in_scale (folded into W1, W2)."""
        a, g = scaled_linear(self.w1, x, in_scale), scaled_linear(self.w2, x, in_scale)
        if self.variant == "reference":
            return self.w3(F.silu(a * g))
        return self.w3(F.silu(a) * g)


class Block(nn.Module):
    """Pre-norm: h = x + Attn(norm_a(x)); out = h + MLP(norm_m(h)). No norm at all if disabled."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.attention = Attention(cfg)
        self.feed_forward = FeedForward(cfg)
        norm = (lambda: RMSNorm(cfg.dim, cfg.norm_eps)) if cfg.rms_norm else nn.Identity
        self.attention_norm = norm()
        self.ffn_norm = norm()

    def forward(self, x, mask, rope, last_only=False):
        n, scale = self._normalized(self.attention_norm, x)
        attn_out, probs = self.attention(n, mask, rope, last_only, scale)
        h = (x[:, -1:] if last_only else x) + attn_out
        n, scale = self._normalized(self.ffn_norm, h)
        return h + self.feed_forward(n, scale), probs

    @staticmethod
    def _normalized(norm, x):
        """(normalised x, the norm's weight to fold into the next linear layers, or None)."""
        if isinstance(norm, RMSNorm):
            return norm.normalize(x), norm.weight
        return norm(x), None


class Decoder(nn.Module):
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps) if cfg.rms_norm else nn.Identity()
        self.out = nn.Linear(cfg.dim, cfg.n_labels, bias=False)
        nn.init.normal_(self.out.weight, std=0.02)
        # Tables are buffers so .to(device) moves them, non-persistent so checkpoints hold weights only.
        if cfg.uses_rope:
            cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        if cfg.pe == "alibi":
            self.register_buffer("alibi", alibi_slopes(cfg.n_heads), persistent=False)

    def embed(self, content: torch.Tensor, pos_offsets: torch.Tensor | None = None,
              validate: bool = True) -> torch.Tensor:
        """Residual input (S, T, dim): for APE/hybrid a one-hot block with token t of sequence s
        at column pos_offsets[s] + t, then the content; otherwise the content itself.
        validate=False skips the offsets' range check, the one host sync of a forward: the
        training loop and stacked cohorts pass offsets drawn in range by the generators (and
        a data-dependent check cannot run under vmap)."""
        cfg = self.cfg
        if content.dim() != 3 or content.shape[-1] != cfg.content_dim:
            raise ValueError(
                f"content has shape {tuple(content.shape)}; "
                f"expected (S, T, content_dim={cfg.content_dim})"
            )
        if not cfg.n_pos_columns:
            return content
        if pos_offsets is None:
            raise ValueError(f"pe={cfg.pe!r} needs pos_offsets (the per-sequence APE shift)")
        S, T, _ = content.shape
        if pos_offsets.shape != (S,):
            raise ValueError(f"pos_offsets has shape {tuple(pos_offsets.shape)}; expected ({S},)")
        if validate:
            lo, hi = torch.stack([pos_offsets.min(), pos_offsets.max()]).tolist()
            if lo < 0 or hi + T > cfg.n_pos_columns:
                raise ValueError(
                    f"pos_offsets in [{lo}, {hi}] with T={T} tokens need columns up to "
                    f"{hi + T - 1}; expected 0 <= pos_offsets and pos_offsets + T <= "
                    f"n_pos_columns={cfg.n_pos_columns}"
                )
        columns = pos_offsets.view(S, 1, 1) + torch.arange(T, device=content.device).view(T, 1)
        block = (columns == torch.arange(cfg.n_pos_columns, device=content.device))
        return torch.cat([block.to(content.dtype), content], dim=-1)

    def _mask(self, T: int, device) -> torch.Tensor:
        causal = torch.full((T, T), float("-inf"), device=device).triu(1)
        if self.cfg.pe != "alibi":
            return causal
        pos = torch.arange(T, device=device)
        distance = (pos.view(T, 1) - pos.view(1, T)).clamp(min=0).float()
        return causal - self.alibi.view(-1, 1, 1) * distance  # (H, T, T)

    def forward(self, content, pos_offsets=None, return_attn=False, validate=True):
        """content (S, T, content_dim) -> logits (S, n_labels), read at the last position only.

        pos_offsets (S,) long: APE/hybrid shift, token t of sequence s is one-hot at column
        pos_offsets[s] + t (required for ape/hybrid, ignored otherwise).
        return_attn: also return the attention probabilities (n_layers, S, n_heads, T, T),
        i.e. [layer, batch, head, query, key]."""
        x = self.embed(content, pos_offsets, validate)
        T = x.shape[1]
        if T > self.cfg.max_seq_len and self.cfg.uses_rope:
            raise ValueError(f"sequence length {T} exceeds max_seq_len={self.cfg.max_seq_len}")
        mask = self._mask(T, x.device)
        rope = (self.rope_cos, self.rope_sin) if self.cfg.uses_rope else None
        attns = []
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            # Only the last position feeds the logits: the last layer skips the other queries
            # (a third fewer FLOPs for 2 layers) unless the full attention maps are wanted.
            x, probs = layer(x, mask, rope, last_only=(i == last and not return_attn))
            attns.append(probs)
        logits = self.out(self.norm(x[:, -1]))
        if return_attn:
            return logits, torch.stack(attns)
        return logits

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())
