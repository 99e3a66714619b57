"""One interface through which every analysis reaches a model: ours or a Hugging Face one.

TransformerLens conventions: attention probabilities are ``[layer, batch, head, query, key]``,
head scores ``[layers, heads]``, and a head is ablated on its own slice *before* the output
projection (after ``Wo`` the coordinates are residual dimensions, not heads). Ablations are
forward hooks that the context manager removes on exit, so the model is never left modified.

Token positions are index tensors per sequence (`Positions`), never a stride rule: the same
indicator code reads a 17-token Gaussian sequence and a 900-token chat prompt with images.

Implementations: `mmicl.analysis.ours.DecoderAdapter` (the synthetic decoders of both stages) and
`mmicl.vlm.adapter.HFAdapter` (Qwen2.5-VL / Qwen2.5 causal LMs).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

ABLATION_MODES = ("zero", "mean", "uniform")
"""zero: the head's value mix is replaced by 0 at every position (the paper's knockout);
mean: by its mean over the batch's sequences at each position; uniform: the head attends
uniformly to every key it may see (causal), i.e. its pattern carries no information."""


@dataclass
class Positions:
    """Where the tokens of each sequence sit, as index tensors over the batch (S sequences).

    query: (S,) the row the prediction is read from (the last token).
    labels: (S, N) the label tokens of the N context pairs (synthetic tasks); for a chat prompt,
        the positions of the demonstrations' answers may be given instead through `masks`.
    items: modality name -> (S, N) the item tokens of the context pairs ("item" for unimodal
        sequences; "m1" and "m2" for triplets).
    queries: modality name -> (S,) the query item of each modality ("m1" is the M1 query of a
        triplet; the M2 query slot is `query` itself).
    masks: name -> (S, T) bool key masks for anything that is not one token per pair (e.g. the
        answer spans of an Open-MI prompt, or the text tokens of a multimodal prompt).
    """

    query: torch.Tensor
    labels: torch.Tensor | None = None
    items: dict[str, torch.Tensor] = field(default_factory=dict)
    queries: dict[str, torch.Tensor] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict)

    def to(self, device) -> "Positions":
        move = lambda d: {k: v.to(device) for k, v in d.items()}  # noqa: E731
        return Positions(self.query.to(device),
                         None if self.labels is None else self.labels.to(device),
                         move(self.items), move(self.queries), move(self.masks))


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (S, V) at each sequence's query position
    attention: torch.Tensor | None = None  # (n_layers, S, n_heads, T, T) when asked for


@runtime_checkable
class ModelAdapter(Protocol):
    """What the analyses (indicators, knockout, zeroing, alignment, head scores) need."""

    n_layers: int
    n_heads: int

    def run(self, batch: Any, attention: bool = False) -> ModelOutput:
        """Logits at the query position and, if asked, every layer's attention probabilities."""

    def ablate_heads(self, heads: Sequence[tuple[int, int]],
                     mode: str = "zero") -> AbstractContextManager:
        """A context manager inside which the (layer, head) pairs (0-based) are ablated."""


def check_heads(heads: Sequence[tuple[int, int]], n_layers: int, n_heads: int) -> None:
    """Every (layer, head) lies in the model's grid; the error names the first that does not."""
    for layer, head in heads:
        if not (0 <= layer < n_layers and 0 <= head < n_heads):
            raise ValueError(f"head (layer={layer}, head={head}) is outside the model's "
                             f"{n_layers} layers x {n_heads} heads (0-based)")


def check_mode(mode: str, supported: Sequence[str] = ABLATION_MODES) -> None:
    if mode not in supported:
        raise ValueError(f"ablation mode {mode!r} is not supported here; expected one of: "
                         f"{', '.join(supported)}")


def heads_by_layer(heads: Sequence[tuple[int, int]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for layer, head in heads:
        out.setdefault(int(layer), []).append(int(head))
    return out


class HookSet:
    """Forward (pre-)hooks registered together and removed together."""

    def __init__(self):
        self.handles: list = []

    def add(self, handle) -> None:
        self.handles.append(handle)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def __enter__(self) -> "HookSet":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def iter_chunks(n: int, chunk: int) -> Iterator[slice]:
    if not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"chunk={chunk!r} must be a positive integer")
    for start in range(0, n, chunk):
        yield slice(start, min(start + chunk, n))
