"""Omniglot from its standard on-disk layout, in a sorted, filesystem-independent class order.

Layout (torchvision's, unpacked from the two zips of github.com/brendenlake/omniglot):

    <root>/omniglot-py/images_background/<Alphabet>/<character>/*.png   (964 characters)
    <root>/omniglot-py/images_evaluation/<Alphabet>/<character>/*.png   (659 characters)

105 x 105 binary PNGs, 20 drawings per character; pixels become uint8 0/255 here and float /255
in the stream (strokes 0, background 1, as torchvision hands them to the authors).

Class order: background characters, then evaluation characters; within each, alphabets,
characters and files sorted by name. torchvision enumerates with `os.listdir`, whose order
depends on the filesystem (MLLM_OFFLINE.md §4), so "torchvision's order" is not one order; the
sorted order is what it gives where listdir is sorted, and the same on every machine here.

Nothing is downloaded (the authors never passed download=True either, §9.18): a missing tree
stops with the path and where the data comes from. No cache is written beside the data: the
tree is indexed (names only), and only the characters a run uses are decoded (~0.1 ms per
drawing; e.g. K2 = 256 + 128 novel characters x 20 drawings in well under a second).

The M2 split is the authors' `OmniglotMMDataset` (§1.9): M2 classes = the first K2 characters,
training drawings = the first 15 (= 20 - 5), held-out exemplars of known classes = the last 5,
novel classes = the last 128 characters with all 20 drawings. The encoder's n_img_per_class,
eps0, alpha0 and augmentation do not apply to the multimodal stream (§9.17, kept): they belong
to encoder pretraining (`omniglot_pretrain_pools`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmicl.data.images.pool import ImagePool

OMNIGLOT_DIR = "omniglot-py"
SPLITS = ("images_background", "images_evaluation")
DRAWINGS = 20  # every Omniglot character has 20 drawers
HELDOUT = 5  # last drawings of a known class: in-distribution test exemplars
NOVEL = 128  # last characters: novel classes of the IC test set
LAYOUT = "<root>/omniglot-py/images_{background,evaluation}/<Alphabet>/<character>/*.png"
HOW_TO_GET = (
    "Omniglot is not downloaded automatically: get images_background.zip and "
    "images_evaluation.zip from the Omniglot repository (github.com/brendenlake/omniglot, "
    "folder python/) and unzip both under <root>/omniglot-py/, or render the offline glyph "
    "stand-in with mmicl.data.images.glyphs.render_glyph_omniglot(root, seed)"
)


@dataclass(frozen=True)
class Character:
    split: str  # images_background | images_evaluation
    alphabet: str
    name: str
    files: tuple[Path, ...]  # the first `drawings` PNGs, sorted by name


@dataclass(frozen=True)
class OmniglotIndex:
    root: Path
    characters: tuple[Character, ...]  # class id = position
    n_background: int

    def __len__(self) -> int:
        return len(self.characters)


def _subdirs(path: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def index_omniglot(root: str | os.PathLike, drawings: int = DRAWINGS) -> OmniglotIndex:
    """Class list of the tree under root; no image is decoded. Raises FileNotFoundError for a
    missing tree and ValueError for a wrong layout or a character with too few drawings."""
    root = Path(root)
    base = root / OMNIGLOT_DIR
    if not base.is_dir():
        raise FileNotFoundError(f"Omniglot not found: {base} does not exist. {HOW_TO_GET}; "
                                f"expected layout {LAYOUT}")
    characters, n_background = [], 0
    for split in SPLITS:
        split_dir = base / split
        if not split_dir.is_dir():
            zipped = " (found the zip: unzip it there)" if (base / f"{split}.zip").exists() else ""
            raise ValueError(f"wrong Omniglot layout: {split_dir} is missing{zipped}; expected "
                             f"{LAYOUT}")
        alphabets = _subdirs(split_dir)
        if not alphabets:
            raise ValueError(f"wrong Omniglot layout: {split_dir} holds no alphabet folders; "
                             f"expected {LAYOUT}")
        for alphabet in alphabets:
            names = _subdirs(split_dir / alphabet)
            if not names:
                raise ValueError(f"wrong Omniglot layout: {split_dir / alphabet} holds no "
                                 f"character folders; expected {LAYOUT}")
            for name in names:
                folder = split_dir / alphabet / name
                files = sorted(p for p in folder.iterdir()
                               if p.suffix.lower() == ".png" and not p.name.startswith("."))
                if len(files) < drawings:
                    raise ValueError(f"too few drawings: {folder} holds {len(files)} .png files; "
                                     f"expected {drawings} per character ({LAYOUT})")
                characters.append(Character(split, alphabet, name, tuple(files[:drawings])))
        if split == SPLITS[0]:
            n_background = len(characters)
    return OmniglotIndex(root, tuple(characters), n_background)


def _decode(path: Path, image_size: int | None) -> np.ndarray:
    with Image.open(path) as img:
        gray = img.convert("L")
        if image_size is not None and gray.size != (image_size, image_size):
            # Area averaging: a downsampled binary glyph keeps its stroke mass as gray levels.
            gray = gray.resize((image_size, image_size), Image.Resampling.BOX)
        return np.asarray(gray, dtype=np.uint8)


def load_characters(index: OmniglotIndex, classes, image_size: int | None = None) -> torch.Tensor:
    """uint8 (len(classes), drawings, 1, H, W) for the given class ids (H = W = image_size or
    the files' own size, 105 for Omniglot). Every image must have the same size."""
    classes = list(classes)
    bad = [c for c in classes if not 0 <= c < len(index)]
    if bad:
        raise ValueError(f"class ids {bad[:5]} outside 0..{len(index) - 1} ({index.root})")
    drawings = len(index.characters[0].files) if index.characters else 0
    out = None
    for row, c in enumerate(classes):
        for col, path in enumerate(index.characters[c].files):
            img = _decode(path, image_size)
            if out is None:
                out = np.empty((len(classes), drawings, 1, *img.shape), dtype=np.uint8)
            if img.shape != out.shape[-2:]:
                raise ValueError(f"{path} is {img.shape[1]}x{img.shape[0]} pixels; expected "
                                 f"{out.shape[-1]}x{out.shape[-2]} like the first image")
            out[row, col, 0] = img
    return torch.from_numpy(out if out is not None else np.empty((0, drawings, 1, 0, 0), np.uint8))


def _check_K(index: OmniglotIndex, K: int, n_novel: int, key: str) -> None:
    if isinstance(K, bool) or not isinstance(K, int) or K <= 0:
        raise ValueError(f"{key}={K!r} must be a positive integer")
    if K + n_novel > len(index):
        raise ValueError(f"{key}={K} overlaps the last {n_novel} (novel) characters: "
                         f"{index.root} holds {len(index)} characters, so {key} <= "
                         f"{len(index) - n_novel}")


def omniglot_mm_pool(root, K2: int, image_size: int | None = None, n_heldout: int = HELDOUT,
                     n_novel: int = NOVEL) -> ImagePool:
    """The authors' OmniglotMMDataset split: first K2 characters (first 20 - n_heldout drawings
    to train on, last n_heldout held out), novel = last n_novel characters, all drawings."""
    index = index_omniglot(root)
    _check_K(index, K2, n_novel, "K2")
    known = load_characters(index, range(K2), image_size)
    novel = load_characters(index, range(len(index) - n_novel, len(index)), image_size)
    n_train = known.shape[1] - n_heldout
    return ImagePool(known[:, :n_train].contiguous(), known[:, n_train:].contiguous(), novel,
                     source=f"omniglot:{Path(root).resolve()}:K2={K2}:novel=last{n_novel}")


def omniglot_pretrain_pools(root, K: int, n_img_per_class: int = DRAWINGS - HELDOUT,
                            n_val: int = HELDOUT, image_size: int | None = None):
    """Encoder pretraining (the authors' OmniglotDataset): first K characters, their first
    n_img_per_class drawings to train on and last n_val to validate on (overlapping when
    n_img_per_class > 20 - n_val, as in the reference). Returns (train, val) uint8 tensors."""
    index = index_omniglot(root)
    _check_K(index, K, 0, "K")
    if not 0 < n_img_per_class <= DRAWINGS or not 0 < n_val <= DRAWINGS:
        raise ValueError(f"n_img_per_class={n_img_per_class} and n_val={n_val} must lie in "
                         f"1..{DRAWINGS}")
    images = load_characters(index, range(K), image_size)
    return images[:, :n_img_per_class].contiguous(), images[:, -n_val:].contiguous()
