"""The glyph Omniglot: deterministic per seed, look-alike letters merged, the Omniglot layout
(read back by the Omniglot loader), and a killed render that does not look complete."""

import json

import numpy as np
import pytest

from mmicl.data.images import glyphs
from mmicl.data.images.glyphs import render_glyph_omniglot, script_of
from mmicl.data.images.omniglot import index_omniglot, load_characters, omniglot_mm_pool

# Latin, Greek and Cyrillic capitals A and B (one look each), a few other letters, and
# evaluation-script letters (Tifinagh, Ogham) so both halves of the layout exist.
CODEPOINTS = ([0x41, 0x391, 0x410, 0x42, 0x392, 0x412, 0x47, 0x52, 0x61, 0x67, 0x3BB, 0x436]
              + list(range(0x2D30, 0x2D36)) + list(range(0x1681, 0x1684)))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("glyphs")
    return root, render_glyph_omniglot(root, seed=3, codepoints=CODEPOINTS)


def tree_bytes(root):
    base = root / "omniglot-py"
    return {str(p.relative_to(base)): p.read_bytes()
            for p in sorted(base.rglob("*")) if p.is_file()}


def test_scripts_from_unicode_names():
    assert [script_of(cp) for cp in (0x41, 0x391, 0x410, 0x1401, 0x10300, 0x2D30)] == \
        ["Latin", "Greek", "Cyrillic", "Canadian_Syllabics", "Old_Italic", "Tifinagh"]
    assert script_of(0x1D400) is None  # MATHEMATICAL BOLD CAPITAL A: a styled copy
    assert script_of(0x2B0) is None  # MODIFIER LETTER SMALL H (Lm)
    assert script_of(0xFB01) is None  # LATIN SMALL LIGATURE FI
    assert script_of(0x31) is None  # a digit


def test_lookalike_letters_are_one_class(rendered):
    root, report = rendered
    manifest = json.loads((root / "omniglot-py" / "glyphs.json").read_text())
    by_cp = {cp: c for c in manifest["classes"] for cp in c["codepoints"]}
    assert by_cp["U+0041"]["codepoints"] == ["U+0041", "U+0391", "U+0410"]
    assert by_cp["U+0042"]["codepoints"] == ["U+0042", "U+0392", "U+0412"]
    assert by_cp["U+0041"]["alphabet"] == "Latin"
    assert by_cp["U+0061"]["codepoints"] == ["U+0061"]  # lower-case a stays its own class
    assert by_cp["U+0047"] is not by_cp["U+0052"]
    assert report.n_letters == len(CODEPOINTS)
    assert report.n_merged_letters == 4 and report.n_merge_groups == 2
    assert report.n_classes == len(CODEPOINTS) - 4 == len(manifest["classes"])


def test_writes_the_omniglot_layout_the_loader_reads(rendered):
    root, report = rendered
    base = root / "omniglot-py"
    assert sorted(p.name for p in base.iterdir()) == ["glyphs.json", "images_background",
                                                      "images_evaluation"]
    assert sorted(p.name for p in (base / "images_background").iterdir()) == \
        ["Cyrillic", "Greek", "Latin"]
    assert sorted(p.name for p in (base / "images_evaluation").iterdir()) == ["Ogham", "Tifinagh"]
    index = index_omniglot(root)
    assert len(index) == report.n_classes
    background = [c.alphabet for c in index.characters[:index.n_background]]
    evaluation = [c.alphabet for c in index.characters[index.n_background:]]
    assert background == sorted(background) and evaluation == sorted(evaluation)
    assert set(background) == {"Cyrillic", "Greek", "Latin"}
    images = load_characters(index, range(len(index)))
    assert images.shape == (report.n_classes, 20, 1, 105, 105)
    assert set(images.unique().tolist()) == {0, 255}
    ink = (images == 0).float().mean(dim=(2, 3, 4))
    assert (ink > 0.01).all() and (ink < 0.6).all()  # every drawing has strokes on a white page
    # twenty different drawings per class
    flat = images.flatten(2)
    for c in range(len(index)):
        assert len({bytes(flat[c, j].numpy()) for j in range(20)}) == 20
    pool = omniglot_mm_pool(root, K2=4, n_novel=3)
    assert pool.train.shape == (4, 15, 1, 105, 105) and pool.novel.shape == (3, 20, 1, 105, 105)


def test_deterministic_per_seed(rendered, tmp_path):
    root, _ = rendered
    again = tmp_path / "again"
    render_glyph_omniglot(again, seed=3, codepoints=CODEPOINTS)
    assert tree_bytes(again) == tree_bytes(root)
    other = tmp_path / "other"
    render_glyph_omniglot(other, seed=4, codepoints=CODEPOINTS)
    a, b = tree_bytes(root), tree_bytes(other)
    assert a.keys() == b.keys()
    pngs = [k for k in a if k.endswith(".png")]
    assert sum(a[k] != b[k] for k in pngs) > 0.9 * len(pngs)


def test_existing_tree_is_kept(rendered):
    root, _ = rendered
    with pytest.raises(FileExistsError, match="omniglot-py exists"):
        render_glyph_omniglot(root, seed=3, codepoints=CODEPOINTS)


def test_killed_render_leaves_no_complete_looking_tree(tmp_path, monkeypatch):
    calls = []

    def dying(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill midway
        return real(*args, **kwargs)

    real = glyphs._render_class
    monkeypatch.setattr(glyphs, "_render_class", dying)
    with pytest.raises(KeyboardInterrupt):
        render_glyph_omniglot(tmp_path, seed=0, codepoints=CODEPOINTS)
    assert not (tmp_path / "omniglot-py").exists()
    with pytest.raises(FileNotFoundError):
        index_omniglot(tmp_path)


def test_smoke_subset_has_room_for_K2_and_128_novel_classes():
    classes, n_letters, _ = glyphs.plan_classes(glyphs.smoke_codepoints())
    evaluation = sum(c.split == "images_evaluation" for c in classes)
    assert evaluation >= 128 and len(classes) - 128 >= 64


def test_merge_rule_is_transitive():
    a = np.zeros((4, 2, 2))
    a[1, 0, 0] = 0.03  # 0 ~ 1 (rms 0.015), 1 ~ 2 (rms 0.015), 0 !~ 2 (rms 0.03)
    a[2, 0, 0] = 0.06
    a[3] = 1.0
    assert glyphs.merge_lookalikes(a, threshold=0.02) == [[0, 1, 2], [3]]
