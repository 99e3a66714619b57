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
                    cid = ids[(split, alphabet, char)]
                    img = Image.fromarray(identity_image(cid, j, size)).convert("1")
                    img.save(folder / f"{cid:04d}_{j + 1:02d}.png")
    return root


# Mini-ImageNet: uniform-colour images, so a class and an image index survive resizing:
# red = 40 * class (in sorted order), green = 10 * image index, blue = 7.
MINI_CLASSES = {"train": ["n0300", "n0100", "n0200"], "test": ["n0900", "n0800"]}


def mini_colour(class_id: int, image: int) -> tuple[int, int, int]:
    return (40 * class_id, 10 * image, 7)


def decode_mini(img: torch.Tensor) -> tuple[int, int]:
    """(class, image) of a (3, H, W) uint8 fixture image."""
    r, g = float(img[0].float().mean()), float(img[1].float().mean())
    return round(r / 40), round(g / 10)


def write_mini_folders(root, images: int = 8, size: int = 20):
    """<root>/{train,test}/<wnid>/*.png in the real layout; one .JPEG per class; created in an
    unsorted order; image j of a class is file j in sorted file order."""
    for split, wnids in MINI_CLASSES.items():
        for wnid in wnids:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            c = sorted(wnids).index(wnid)
            for j in reversed(range(images)):
                img = Image.new("RGB", (size, size), mini_colour(c, j))
                suffix = "JPEG" if j == 0 else "png"
                img.save(folder / f"{wnid}_{j:04d}.{suffix}", quality=100)
    return root


def mini_arrays(split: str, images: int = 8, size: int = 84) -> dict[str, np.ndarray]:
    """class name -> (images, size, size, 3) uint8, as in the pickles."""
    out = {}
    for c, wnid in enumerate(sorted(MINI_CLASSES[split])):
        out[wnid] = np.stack([np.broadcast_to(np.array(mini_colour(c, j), np.uint8),
                                              (size, size, 3)).copy() for j in range(images)])
    return out
