"""The image pool of an M2 stream: uint8 images of the known and the novel classes.

Kept as uint8 (0..255) and converted to float /255 only for the items a batch draws: a 1623 x 20
Omniglot pool is 358 MB as uint8 and four times that as float.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class ImagePool:
    """Known classes 0..K2-1 (training and held-out drawings) and novel classes 0..n_novel-1."""

    train: torch.Tensor  # (K2, n_train, C, H, W) uint8: drawings the stream trains on
    heldout: torch.Tensor  # (K2, n_heldout, C, H, W) uint8: in-distribution test exemplars
    novel: torch.Tensor  # (n_novel, n_drawings, C, H, W) uint8: never-trained classes (IC)
    source: str = ""  # where the images came from (path and split rule), for run records

    def __post_init__(self):
        for name in ("train", "heldout", "novel"):
            t = getattr(self, name)
            if t.dtype != torch.uint8 or t.dim() != 5:
                raise ValueError(f"ImagePool.{name} has shape {tuple(t.shape)} and dtype "
                                 f"{t.dtype}; expected (classes, drawings, C, H, W) uint8")
            if t.shape[0] == 0 or t.shape[1] == 0:
                raise ValueError(f"ImagePool.{name} is empty: shape {tuple(t.shape)}")
        if self.train.shape[0] != self.heldout.shape[0]:
            raise ValueError(f"ImagePool: {self.train.shape[0]} classes with training drawings "
                             f"but {self.heldout.shape[0]} with held-out drawings")
        shapes = {tuple(getattr(self, n).shape[2:]) for n in ("train", "heldout", "novel")}
        if len(shapes) != 1:
            raise ValueError(f"ImagePool: image shapes differ between parts: {sorted(shapes)}")

    @property
    def K2(self) -> int:
        return self.train.shape[0]

    @property
    def n_novel(self) -> int:
        return self.novel.shape[0]

    @property
    def item_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.shape[2:])

    def bank(self) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
        """All images as one (M, C, H, W) tensor and, per part, (offset, drawings per class):
        image i of class c of a part sits at offset + c * drawings + i."""
        parts, layout, offset = [], {}, 0
        for name in ("train", "heldout", "novel"):
            t = getattr(self, name)
            parts.append(t.flatten(0, 1))
            layout[name] = (offset, t.shape[1])
            offset += t.shape[0] * t.shape[1]
        return torch.cat(parts), layout
