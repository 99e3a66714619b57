"""Mini-ImageNet for the M2 stream (App. I2), read from any of the layouts the authors' loader
accepts (protocol §1.9), tried in their order for each split:

1. `<root>/mini-imagenet-cache-{split}.pkl`: {'image_data': uint8 (n, 84, 84, 3),
   'class_dict': {class: [row indices]}};
2. `<root>/miniImageNet_category_split_{split}.pickle`: {'data': uint8 (n, 84, 84, 3),
   'labels': [int], optional 'catname2label': {class: int}} (a Python 2 pickle: read as latin1).
   The authors' loader treats this file as a class -> images dict and so misreads it; here its
   own keys are used;
3. `<root>/{split}.pkl`: {class: images (n, 84, 84, 3) or (n, 3, 84, 84)};
4. folders `<root>/{split}/<wnid>/*.{jpg,jpeg,png,JPEG}` (any size; resized to 84 x 84 RGB with
   Pillow's bicubic filter, the default of the authors' `img.resize`).

The root comes from the `root` argument, else the environment variable MINI_IMAGENET_ROOT; the
data are never downloaded. Classes are in sorted order of their names; images in file order
(folders: sorted file names). Pixels stay uint8 (the stream divides by 255), CHW. Classes with
different image counts are cut to the smallest count (the standard data has 600 per class).

How the folders were made is not checked: the authors' prepare_mini_imagenet.py takes the first
600 sorted files of each Ravi-Larochelle class from an ImageNet train directory, not the official
per-split image lists (§9.22), so "Mini-ImageNet" from it and from the usual pickles differ in
their images; record which one a run used (`ImagePool.source`).

Splits of the authors' MiniImageNetMMDataset: M2 classes = the first K2 (<= 64) `train`
classes, their first n - 5 images (595 of 600) to train on and last 5 held out; novel classes =
the 20 `test` classes with all images (K_c2 = 20, labels k mod L2, so with L2 = 32 only labels
0..19 occur in the IC test). Encoder pretraining holds out the last 20 images per class instead
(kept, §9.22: the multimodal training images 580..594 are the encoder's validation images).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmicl.data.images.pool import ImagePool

ENV_VAR = "MINI_IMAGENET_ROOT"
IMAGE_SIZE = 84
HELDOUT = 5  # multimodal stream: last 5 images of a known class are in-distribution test items
PRETRAIN_VAL = 20  # encoder pretraining: last 20 images of a class validate
SUFFIXES = (".jpg", ".jpeg", ".png")  # compared in lower case, so .JPEG counts
PICKLES = ("mini-imagenet-cache-{split}.pkl", "miniImageNet_category_split_{split}.pickle",
           "{split}.pkl")
LAYOUTS = ("<root>/mini-imagenet-cache-{split}.pkl (image_data + class_dict), "
           "<root>/miniImageNet_category_split_{split}.pickle (data + labels), "
           "<root>/{split}.pkl (class -> images) or <root>/{split}/<wnid>/*.{jpg,jpeg,png,JPEG}")
HOW_TO_GET = ("Mini-ImageNet is never downloaded here: build it from a local ImageNet train "
              "directory with the Ravi & Larochelle class lists (64 train / 16 val / 20 test "
              "classes, 600 images each), e.g. with the authors' prepare_mini_imagenet.py, or use "
              "the common mini-imagenet-cache-*.pkl files")


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """`root` if given, else $MINI_IMAGENET_ROOT; a missing directory stops here."""
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise FileNotFoundError(f"no Mini-ImageNet root: pass root= (config) or set {ENV_VAR}. "
                                    f"{HOW_TO_GET}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Mini-ImageNet not found: {root} is not a directory. "
                                f"{HOW_TO_GET}; expected {LAYOUTS}")
    return root


def _to_chw(images, where: str, image_size: int) -> np.ndarray:
    """(n, H, W, 3) or (n, 3, H, W) uint8 -> (n, 3, image_size, image_size) uint8."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"{where}: pixels of dtype {arr.dtype}; expected uint8 0..255")
    if arr.ndim != 4 or 3 not in (arr.shape[-1], arr.shape[1]):
        raise ValueError(f"{where}: images of shape {arr.shape}; expected (n, H, W, 3) or "
                         f"(n, 3, H, W)")
    if arr.shape[-1] == 3 and arr.shape[1] != 3:
        arr = arr.transpose(0, 3, 1, 2)
    if arr.shape[-2:] != (image_size, image_size):
        arr = np.stack([np.asarray(Image.fromarray(a.transpose(1, 2, 0)).resize(
            (image_size, image_size), Image.Resampling.BICUBIC)).transpose(2, 0, 1) for a in arr])
    return np.ascontiguousarray(arr)


def _read_pickle(path: Path) -> dict[str, np.ndarray]:
    """class name -> uint8 images (n, H, W, 3) or (n, 3, H, W), in file order."""
    with open(path, "rb") as f:
        try:
            data = pickle.load(f)
        except UnicodeDecodeError:  # Python 2 pickles (the category-split files)
            f.seek(0)
            data = pickle.load(f, encoding="latin1")
    if isinstance(data, dict) and {"image_data", "class_dict"} <= data.keys():
        images = np.asarray(data["image_data"])
        return {str(k): images[np.asarray(v)] for k, v in data["class_dict"].items()}
    if isinstance(data, dict) and {"data", "labels"} <= data.keys():
        images, labels = np.asarray(data["data"]), np.asarray(data["labels"])
        names = {int(v): str(k) for k, v in data.get("catname2label", {}).items()}
        return {names.get(int(label), f"{int(label):05d}"): images[labels == label]
                for label in np.unique(labels)}
    if isinstance(data, dict) and data and all(np.asarray(v).ndim == 4 for v in data.values()):
        return {str(k): np.asarray(v) for k, v in data.items()}
    keys = sorted(map(str, data))[:6] if isinstance(data, dict) else type(data).__name__
    raise ValueError(f"{path}: unrecognised Mini-ImageNet pickle (keys {keys}); expected "
                     f"image_data + class_dict, data + labels, or class -> images")


def _folder_classes(split_dir: Path) -> list[Path]:
    classes = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"wrong Mini-ImageNet layout: {split_dir} holds no class folders; "
                         f"expected {LAYOUTS}")
    return classes


def _folder_images(folder: Path, image_size: int) -> np.ndarray:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES)
    if not files:
        raise ValueError(f"wrong Mini-ImageNet layout: {folder} holds no .jpg/.jpeg/.png "
                         f"images; expected {LAYOUTS}")
    out = np.empty((len(files), 3, image_size, image_size), dtype=np.uint8)
    for i, path in enumerate(files):
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != (image_size, image_size):
                rgb = rgb.resize((image_size, image_size), Image.Resampling.BICUBIC)
            out[i] = np.asarray(rgb).transpose(2, 0, 1)
    return out


def load_split(root=None, split: str = "train", n_classes: int | None = None,
               image_size: int = IMAGE_SIZE) -> tuple[list[str], torch.Tensor, str]:
    """(class names, uint8 images (classes, images, 3, S, S), source) of the first n_classes
    classes (all if None) of a split, in sorted class order."""
    root = resolve_root(root)
    for pattern in PICKLES:
        path = root / pattern.format(split=split)
        if path.is_file():
            per_class = _read_pickle(path)
            names = sorted(per_class)[:n_classes]
            arrays = [_to_chw(per_class[n], f"{path} class {n}", image_size) for n in names]
            return names, _stack(arrays, path), str(path)
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"Mini-ImageNet split {split!r} not found under {root}: "
                                f"expected {LAYOUTS.replace('{split}', split)}. {HOW_TO_GET}")
    folders = _folder_classes(split_dir)[:n_classes]
    arrays = [_folder_images(folder, image_size) for folder in folders]
    return [f.name for f in folders], _stack(arrays, split_dir), str(split_dir)


def _stack(arrays: list[np.ndarray], where: Path) -> torch.Tensor:
    """One tensor; classes with more images than the smallest class are cut to its count."""
    if not arrays:
        raise ValueError(f"{where}: no classes")
    n = min(len(a) for a in arrays)
    return torch.from_numpy(np.stack([a[:n] for a in arrays]))


def _check_count(what: str, asked: int, available: int, where: str) -> None:
    if isinstance(asked, bool) or not isinstance(asked, int) or asked <= 0:
        raise ValueError(f"{what}={asked!r} must be a positive integer")
    if asked > available:
        raise ValueError(f"{what}={asked} but {where} holds {available} classes")


def miniimagenet_mm_pool(K2: int, root=None, n_heldout: int = HELDOUT,
                         image_size: int = IMAGE_SIZE) -> ImagePool:
    """The authors' MiniImageNetMMDataset split (see the module docstring)."""
    names, train, source = load_split(root, "train", K2, image_size)
    _check_count("K2", K2, len(names), source)
    if train.shape[1] <= n_heldout:
        raise ValueError(f"{source}: {train.shape[1]} images per class; need more than "
                         f"n_heldout={n_heldout}")
    _, novel, novel_source = load_split(root, "test", None, image_size)
    n_train = train.shape[1] - n_heldout
    return ImagePool(train[:, :n_train].contiguous(), train[:, n_train:].contiguous(), novel,
                     source=f"miniimagenet:{source}:K2={K2}:novel={novel_source}")


def miniimagenet_pretrain_pools(K: int = 64, root=None, n_val: int = PRETRAIN_VAL,
                                image_size: int = IMAGE_SIZE):
    """Encoder pretraining: first K train classes, last n_val images of each to validate on,
    the rest to train on. Returns (train, val) uint8 tensors."""
    names, images, source = load_split(root, "train", K, image_size)
    _check_count("K", K, len(names), source)
    if images.shape[1] <= n_val:
        raise ValueError(f"{source}: {images.shape[1]} images per class; need more than "
                         f"n_val={n_val}")
    return images[:, :-n_val].contiguous(), images[:, -n_val:].contiguous()
