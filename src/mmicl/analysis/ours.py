"""The model adapter for the synthetic decoders (Stage 1 `Decoder`, Stage 2 `MultimodalDecoder`).

Heads are ablated by forward hooks on the decoder's hook points (`Attention.hook_heads`: each
head's value mix before Wo; `Attention.hook_pattern`: the attention probabilities); token edits
("whole token" zeroing, APE columns included) by a pre-hook on the first block. Positions come
from the batch's layout: unimodal ``x_0 y_0 ... x_{N-1} y_{N-1} x_q`` (T = 2N+1), triplets
``(m1_i m2_i y_i)_{i<N} m1_q m2_q`` (T = 3N+2); the prediction is read at the last token.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch

from mmicl.analysis.adapter import (
    HookSet, ModelOutput, Positions, check_heads, check_mode, heads_by_layer,
)
from mmicl.analysis.evaluate import forward


class DecoderAdapter:
    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.decoder = getattr(model, "decoder", model)
        self.multimodal = self.decoder is not model
        self.n_layers = self.decoder.cfg.n_layers
        self.n_heads = self.decoder.cfg.n_heads

    @torch.no_grad()
    def run(self, batch, attention: bool = False) -> ModelOutput:
        was_training = self.model.training
        self.model.eval()
        try:
            out = forward(self.model, batch, return_attn=attention)
        finally:
            self.model.train(was_training)
        return ModelOutput(*out) if attention else ModelOutput(out)

    def positions(self, batch) -> Positions:
        S, T = batch.inputs.shape[:2]
        N = (T - 2) // 3 if self.multimodal else (T - 1) // 2
        return sequence_positions("multimodal" if self.multimodal else "unimodal", N, S,
                                  batch.inputs.device)

    @torch.no_grad()
    def embeddings(self, batch) -> torch.Tensor:
        """(S, T, D) token embeddings before the position code: the content, with the projected
        M2 features in their slots for a multimodal model."""
        if self.multimodal:
            return self.model.combine(batch.inputs, batch.m2_inputs)
        return batch.inputs

    # --- head ablation ------------------------------------------------------------------

    @contextmanager
    def ablate_heads(self, heads: Sequence[tuple[int, int]], mode: str = "zero",
                     reference=None):
        """zero: the heads' value mixes are 0 at every position; mean: they are replaced by
        their mean over the sequences of `reference` (a batch) at each position; uniform: the
        heads attend uniformly to every key they may see."""
        check_mode(mode)
        check_heads(heads, self.n_layers, self.n_heads)
        if mode == "mean" and reference is None:
            raise ValueError("mode='mean' needs a reference batch to take the means over")
        means = self._head_means(reference) if mode == "mean" else None
        hooks = HookSet()
        try:
            for layer, idx in heads_by_layer(heads).items():
                attention = self.decoder.layers[layer].attention
                if mode == "uniform":
                    hooks.add(attention.hook_pattern.register_forward_hook(_uniform(idx)))
                else:
                    fill = None if means is None else means[layer]
                    hooks.add(attention.hook_heads.register_forward_hook(_replace(idx, fill)))
            yield self
        finally:
            hooks.remove()

    def _head_means(self, batch) -> list[torch.Tensor]:
        """Per layer: the mean over sequences of every head's value mix (H, T, hd)."""
        captured: list[torch.Tensor | None] = [None] * self.n_layers
        hooks = HookSet()
        for i, layer in enumerate(self.decoder.layers):
            def keep(module, inputs, output, i=i):
                captured[i] = output.mean(0)
            hooks.add(layer.attention.hook_heads.register_forward_hook(keep))
        with hooks:
            self.run(batch, attention=True)  # every query position, in every layer
        return captured

    # --- token edits --------------------------------------------------------------------

    @contextmanager
    def edit_tokens(self, mask: torch.Tensor, mode: str = "zero", reference=None):
        """Whole residual tokens (position columns included) at mask (T,) or (S, T) set to
        zero, or to their mean over the sequences of `reference` at each position."""
        check_mode(mode, ("zero", "mean"))
        fill = None
        if mode == "mean":
            if reference is None:
                raise ValueError("mode='mean' needs a reference batch to take the means over")
            fill = self._residual_mean(reference)

        def pre_hook(module, args):
            x = args[0].clone()
            m = mask.to(x.device)
            m = m.view(1, -1, 1) if m.dim() == 1 else m[..., None]
            replacement = torch.zeros_like(x) if fill is None else fill.expand_as(x)
            return (torch.where(m, replacement, x), *args[1:])

        handle = self.decoder.layers[0].register_forward_pre_hook(pre_hook)
        try:
            yield self
        finally:
            handle.remove()

    def _residual_mean(self, batch) -> torch.Tensor:
        captured = {}

        def keep(module, args):
            captured["x"] = args[0].mean(0, keepdim=True)

        handle = self.decoder.layers[0].register_forward_pre_hook(keep)
        try:
            self.run(batch)
        finally:
            handle.remove()
        return captured["x"]


def sequence_positions(kind: str, N: int, S: int, device=None) -> Positions:
    """The token positions of S synthetic sequences with N context pairs: "unimodal"
    (x_i at 2i, y_i at 2i+1, query at 2N) or "multimodal" triplets (m1_i at 3i, m2_i at 3i+1,
    y_i at 3i+2, M1 query at 3N, M2 query slot at 3N+1, where the prediction is read)."""
    if kind not in ("unimodal", "multimodal"):
        raise ValueError(f"kind={kind!r} is not a sequence layout; expected unimodal or multimodal")
    if isinstance(N, bool) or not isinstance(N, int) or N <= 0:
        raise ValueError(f"N={N!r} must be a positive integer (context pairs)")
    stride = 2 if kind == "unimodal" else 3
    T = stride * N + (1 if kind == "unimodal" else 2)
    pairs = (torch.arange(N, device=device) * stride).expand(S, N)
    query = torch.full((S,), T - 1, device=device)
    if kind == "unimodal":
        return Positions(query=query, labels=pairs + 1, items={"item": pairs})
    return Positions(query=query, labels=pairs + 2, items={"m1": pairs, "m2": pairs + 1},
                     queries={"m1": torch.full((S,), T - 2, device=device)})


def _replace(heads: list[int], fill: torch.Tensor | None):
    """Forward hook on hook_heads (S, H, Tq, hd): the listed heads set to 0 or to `fill`
    (H, T, hd), aligned on the last Tq positions (the last layer may compute the last query
    only)."""
    def hook(module, inputs, output):
        out = output.clone()
        Tq = out.shape[2]
        out[:, heads] = 0.0 if fill is None else fill[heads, -Tq:].to(out)
        return out
    return hook


def _uniform(heads: list[int]):
    """Forward hook on hook_pattern (S, H, Tq, T): the listed heads' rows uniform over the keys
    at or before the query (query q of Tq sits at position T - Tq + q)."""
    def hook(module, inputs, output):
        out = output.clone()
        Tq, T = out.shape[-2:]
        rows = torch.arange(T - Tq, T, device=out.device)[:, None]
        allowed = (torch.arange(T, device=out.device)[None, :] <= rows).to(out.dtype)
        out[:, heads] = allowed / allowed.sum(-1, keepdim=True)
        return out
    return hook
