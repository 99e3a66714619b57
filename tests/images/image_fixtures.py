"""Data written in the real on-disk layouts, with images that encode their own identity."""

import numpy as np
import torch
from PIL import Image

torch.set_num_threads(1)


def identity_image(class_id: int, drawing: int, size: int = 12) -> np.ndarray:
    """Binary image: row 0 spells class_id in binary, row 1 the drawing index (black = 1 bit)."""
    img = np.full((size, size), 255, dtype=np.uint8)
    for bit in range(size):
        if class_id >> bit & 1:
            img[0, bit] = 0
        if drawing >> bit & 1:
            img[1, bit] = 0
    return img


def decode_identity(img: torch.Tensor) -> tuple[int, int]:
    """Inverse of identity_image for a (1, H, W) or (H, W) uint8 image."""
    img = img.reshape(img.shape[-2], img.shape[-1])
    bits = (img[:2] < 128).long()
    weights = 2 ** torch.arange(img.shape[-1])
    return int((bits[0] * weights).sum()), int((bits[1] * weights).sum())


# Alphabets and characters listed in a deliberately unsorted creation order; files too.
OMNIGLOT_TREE = {
    "images_background": {"Zulu_script": ["character03", "character01"],
                          "Alpha_script": ["character02", "character10", "character01"]},
    "images_evaluation": {"Omega": ["character02", "character01"],
                          "Beta": ["character05", "character04", "character01"]},
}


def sorted_characters():
    """(split, alphabet, character) in the order the loader must produce."""
    return [(split, a, c) for split in ("images_background", "images_evaluation")
            for a in sorted(OMNIGLOT_TREE[split]) for c in sorted(OMNIGLOT_TREE[split][a])]


def write_omniglot_tree(root, drawings: int = 20, size: int = 12):
    """The tree of OMNIGLOT_TREE under root/omniglot-py; a character's id is its position in
    sorted_characters(), drawing j of it is file j in sorted order (written in reverse)."""
    ids = {key: i for i, key in enumerate(sorted_characters())}
    for split, alphabets in OMNIGLOT_TREE.items():
        for alphabet, chars in alphabets.items():
            for char in chars:
                folder = root / "omniglot-py" / split / alphabet / char
                folder.mkdir(parents=True)
                for j in reversed(range(drawings)):
                    img = identity_image(ids[(split, alphabet, char)], j, size)
                    Image.fromarray(img).convert("1").save(folder / f"{ids[(split, alphabet, char)]:04d}_{j + 1:02d}.png")
    return root
