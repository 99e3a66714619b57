"""The Omniglot loader on generated trees in the real layout: sorted order, splits, errors."""

import pytest
import torch
from image_fixtures import decode_identity, sorted_characters, write_omniglot_tree

from mmicl.data.images.omniglot import (
    index_omniglot, load_characters, omniglot_mm_pool, omniglot_pretrain_pools,
)


def test_class_order_is_sorted_background_then_evaluation(omniglot_root):
    index = index_omniglot(omniglot_root)
    got = [(c.split, c.alphabet, c.name) for c in index.characters]
    assert got == sorted_characters()
    assert index.n_background == 5 and len(index) == 10
    images = load_characters(index, range(len(index)))
    assert images.shape == (10, 20, 1, 12, 12) and images.dtype == torch.uint8
    assert set(images.unique().tolist()) == {0, 255}
    for c in range(10):
        assert [decode_identity(images[c, j]) for j in range(20)] == [(c, j) for j in range(20)]


def test_mm_split_follows_the_authors(omniglot_root):
    pool = omniglot_mm_pool(omniglot_root, K2=4, n_novel=3)
    assert pool.train.shape == (4, 15, 1, 12, 12)
    assert pool.heldout.shape == (4, 5, 1, 12, 12)
    assert pool.novel.shape == (3, 20, 1, 12, 12)
    assert [decode_identity(pool.train[c, j]) for c in range(4) for j in range(15)] == \
        [(c, j) for c in range(4) for j in range(15)]
    assert [decode_identity(pool.heldout[c, j]) for c in range(4) for j in range(5)] == \
        [(c, 15 + j) for c in range(4) for j in range(5)]
    assert [decode_identity(pool.novel[c, j]) for c in range(3) for j in range(20)] == \
        [(7 + c, j) for c in range(3) for j in range(20)]


def test_pretrain_pools_and_resize(omniglot_root):
    train, val = omniglot_pretrain_pools(omniglot_root, K=3, n_img_per_class=8, image_size=6)
    assert train.shape == (3, 8, 1, 6, 6) and val.shape == (3, 5, 1, 6, 6)
    full_train, full_val = omniglot_pretrain_pools(omniglot_root, K=3, n_img_per_class=8)
    assert [decode_identity(full_val[c, j])[1] for c in range(3) for j in range(5)] == \
        [15 + j for _ in range(3) for j in range(5)]


def test_missing_directory_names_path_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        index_omniglot(tmp_path / "nowhere")
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "omniglot-py") in message
    assert "github.com/brendenlake/omniglot" in message and "images_background.zip" in message


def test_wrong_layout_names_expected_layout(tmp_path):
    (tmp_path / "omniglot-py" / "images_background" / "Latin").mkdir(parents=True)
    with pytest.raises(ValueError) as err:
        index_omniglot(tmp_path)
    assert str(tmp_path / "omniglot-py" / "images_background" / "Latin") in str(err.value)
    assert "images_{background,evaluation}/<Alphabet>/<character>/*.png" in str(err.value)
    # zips present but not unpacked: say so
    other = tmp_path / "zipped"
    (other / "omniglot-py").mkdir(parents=True)
    (other / "omniglot-py" / "images_background.zip").write_bytes(b"")
    with pytest.raises(ValueError, match=r"images_background is missing \(found the zip"):
        index_omniglot(other)


def test_too_few_drawings_names_the_folder(tmp_path):
    write_omniglot_tree(tmp_path)
    folder = tmp_path / "omniglot-py" / "images_evaluation" / "Beta" / "character04"
    for path in sorted(folder.iterdir())[:13]:
        path.unlink()
    with pytest.raises(ValueError, match=rf"{folder} holds 7 \.png files; expected 20"):
        index_omniglot(tmp_path)


def test_K2_overlapping_novel_classes(omniglot_root):
    with pytest.raises(ValueError, match=r"K2=8 overlaps the last 3 \(novel\) characters.*K2 <= 7"):
        omniglot_mm_pool(omniglot_root, K2=8, n_novel=3)
