"""The Mini-ImageNet loader on fixtures in the folder layout and in the three pickle layouts."""

import pickle

import numpy as np
import pytest
from image_fixtures import MINI_CLASSES, decode_mini, mini_arrays, write_mini_folders

from mmicl.data.images.miniimagenet import (
    ENV_VAR, load_split, miniimagenet_mm_pool, miniimagenet_pretrain_pools,
)


def check_contents(images, n_classes, n_images):
    assert images.shape[:3] == (n_classes, n_images, 3)
    for c in range(n_classes):
        assert [decode_mini(images[c, j]) for j in range(n_images)] == \
            [(c, j) for j in range(n_images)]


def test_folder_layout_sorted_and_resized(tmp_path):
    write_mini_folders(tmp_path)
    names, images, source = load_split(tmp_path, "train")
    assert names == sorted(MINI_CLASSES["train"]) and source == str(tmp_path / "train")
    assert images.shape == (3, 8, 3, 84, 84)
    check_contents(images, 3, 8)


def test_mm_split_and_env_root(tmp_path, monkeypatch):
    write_mini_folders(tmp_path)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    pool = miniimagenet_mm_pool(K2=2, image_size=12)
    assert pool.train.shape == (2, 3, 3, 12, 12) and pool.heldout.shape == (2, 5, 3, 12, 12)
    assert pool.novel.shape == (2, 8, 3, 12, 12)
    assert [decode_mini(pool.heldout[1, j]) for j in range(5)] == [(1, 3 + j) for j in range(5)]
    check_contents(pool.novel, 2, 8)
    train, val = miniimagenet_pretrain_pools(K=3, n_val=2, image_size=12)
    assert train.shape[:2] == (3, 6) and val.shape[:2] == (3, 2)
    assert decode_mini(val[2, 1]) == (2, 7)


@pytest.mark.parametrize("layout", ["cache", "category_split", "dict"])
def test_pickle_layouts(tmp_path, layout):
    for split in ("train", "test"):
        per_class = mini_arrays(split)
        if layout == "cache":
            data = {"image_data": np.concatenate(list(per_class.values()))[::-1].copy(),
                    "class_dict": {}}
            n = len(next(iter(per_class.values())))
            total = n * len(per_class)
            for c, name in enumerate(per_class):  # rows stored in reverse order
                data["class_dict"][name] = [total - 1 - (c * n + j) for j in range(n)]
            name = f"mini-imagenet-cache-{split}.pkl"
        elif layout == "category_split":
            names = list(per_class)
            data = {"data": np.concatenate(list(per_class.values())),
                    "labels": [i for i, k in enumerate(names) for _ in per_class[k]],
                    "catname2label": {k: i for i, k in enumerate(names)}}
            name = f"miniImageNet_category_split_{split}.pickle"
        else:
            data = {k: v.transpose(0, 3, 1, 2) for k, v in reversed(per_class.items())}
            name = f"{split}.pkl"
        with open(tmp_path / name, "wb") as f:
            pickle.dump(data, f, protocol=2)
    names, images, source = load_split(tmp_path, "train")
    assert names == sorted(MINI_CLASSES["train"]) and source.endswith(name.replace("test", "train"))
    check_contents(images, 3, 8)
    pool = miniimagenet_mm_pool(K2=3, root=tmp_path)
    assert pool.novel.shape == (2, 8, 3, 84, 84)


def test_missing_root_and_missing_env(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(FileNotFoundError, match=rf"pass root= \(config\) or set {ENV_VAR}"):
        load_split(None, "train")
    with pytest.raises(FileNotFoundError) as err:
        load_split(tmp_path / "absent", "train")
    assert str(tmp_path / "absent") in str(err.value) and "never downloaded" in str(err.value)


def test_wrong_layouts_name_path_and_expected_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split 'train' not found .*train/<wnid>/\*"):
        load_split(tmp_path, "train")
    (tmp_path / "train" / "n01").mkdir(parents=True)
    (tmp_path / "train" / "n01" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=rf"{tmp_path / 'train' / 'n01'} holds no \.jpg"):
        load_split(tmp_path, "train")
    with open(tmp_path / "test.pkl", "wb") as f:
        pickle.dump({"images": [1, 2, 3]}, f)
    with pytest.raises(ValueError, match=r"test\.pkl: unrecognised Mini-ImageNet pickle"):
        load_split(tmp_path, "test")


def test_K2_beyond_available_classes(tmp_path):
    write_mini_folders(tmp_path)
    with pytest.raises(ValueError, match=r"K2=4 but .*train holds 3 classes"):
        miniimagenet_mm_pool(K2=4, root=tmp_path)
