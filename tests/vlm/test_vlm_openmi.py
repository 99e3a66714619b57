"""Open-MI loader: the authors' demonstration selection, both loader paths, bad input."""

import json

import pytest

from mmicl.vlm.openmi import ENV_ROOT, load_open_mi, write_fixture

CLASSES3 = ["blicket", "dax", "perpo"]


def hand_written(root, entries):
    """open_mi/query.json from (answer, classes) pairs, 3 support images per class, touched."""
    task = root / "open_mi"
    (task / "support").mkdir(parents=True)
    (task / "query").mkdir()
    out = []
    for q, (answer, classes) in enumerate(entries):
        support = {c: {"images": [f"open_mi/support/{q}_{c}_{i}.png" for i in range(3)],
                       "real_name": f"real_{c}"} for c in classes}
        out.append({"image": [f"open_mi/query/{q}.png"], "question": "This is a",
                    "answer": answer, "classes": classes, "support": support,
                    "real_name": f"real_{answer}"})
        for path in [out[-1]["image"][0], *(p for s in support.values() for p in s["images"])]:
            (root / path).touch()
    (task / "query.json").write_text(json.dumps(out))
    return root


def test_demonstration_order_is_the_references_for_seed_0(tmp_path):
    # Expected orders pinned from Python's Mersenne Twister, random.Random(0), consumed as the
    # authors' _select_demonstration_open_mi does: choice(other classes), then random() < 0.5
    # swaps; the rng is shared by the examples in file order.
    root = hand_written(tmp_path, [("dax", CLASSES3), ("perpo", CLASSES3),
                                   ("blicket", CLASSES3), ("dax", ["dax", "slation"])])
    examples = load_open_mi(root, n_shot=2, seed=0)
    expected = [["dax", "perpo"], ["dax", "perpo"], ["perpo", "blicket"], ["dax", "slation"]]
    for q, (ex, order) in enumerate(zip(examples, expected)):
        assert [s.answer for s in ex.shots] == order * 2
        assert [s.image for s in ex.shots] == [f"open_mi/support/{q}_{c}_{i}.png"
                                               for i in range(2) for c in order]
        assert [s.real_name for s in ex.shots] == [f"real_{c}" for c in order * 2]
        assert ex.question == "This is a" and ex.image == f"open_mi/query/{q}.png"
    # n_shot = 3 -> 6 demos, same classes (same draws), one more round
    three = load_open_mi(root, n_shot=3, seed=0)
    assert [s.answer for s in three[2].shots] == ["perpo", "blicket"] * 3
    # another seed changes some draw
    other = load_open_mi(root, n_shot=2, seed=1)
    assert [[s.answer for s in e.shots] for e in other] != [o * 2 for o in expected]


def test_fixture_invariants_and_both_loader_paths_agree(data_root):
    from_query = load_open_mi(data_root, n_shot=2, seed=0, source="query")
    prebuilt = load_open_mi(data_root, n_shot=2, seed=0, source="prebuilt")
    auto = load_open_mi(data_root, n_shot=2, seed=0)
    assert len(from_query) == len(prebuilt) == 24
    assert [e.question for e in auto] == [None] * 24  # auto prefers the prebuilt file
    for q, p in zip(from_query, prebuilt):
        assert [(s.image, s.answer) for s in q.shots] == [(s.image, s.answer) for s in p.shots]
        assert (q.image, q.answer, q.real_name) == (p.image, p.answer, p.real_name)
        assert len(q.shots) == 4 and q.answer in {s.answer for s in q.shots}
        assert len({s.answer for s in q.shots}) == 2
        assert all(path.is_file() for path in q.images)
    assert {e.answer for e in from_query} <= {"blicket", "dax", "shously", "perpo", "slation"}


def test_fixture_is_deterministic(tmp_path):
    a, b = write_fixture(tmp_path / "a", 3, seed=5), write_fixture(tmp_path / "b", 3, seed=5)
    assert (a / "open_mi/query.json").read_text() == (b / "open_mi/query.json").read_text()
    image = "open_mi/query/q0001.png"
    assert (a / image).read_bytes() == (b / image).read_bytes()


def test_root_from_environment(data_root, monkeypatch):
    monkeypatch.setenv(ENV_ROOT, str(data_root))
    assert len(load_open_mi(None, n_examples=3)) == 3
    monkeypatch.delenv(ENV_ROOT)
    with pytest.raises(FileNotFoundError, match=ENV_ROOT):
        load_open_mi(None)


def test_root_without_open_mi_names_path_and_source(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_open_mi(tmp_path)
    assert str(tmp_path) in str(err.value) and "ys-zong/VL-ICL" in str(err.value)
    assert "open_mi" in str(err.value)


def test_query_entry_missing_field_names_field_and_index(tmp_path):
    root = hand_written(tmp_path, [("dax", CLASSES3), ("perpo", CLASSES3)])
    path = root / "open_mi/query.json"
    entries = json.loads(path.read_text())
    del entries[1]["classes"]
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match=r"entry 1 has no field 'classes'") as err:
        load_open_mi(root)
    assert str(path) in str(err.value)


def test_too_few_support_images_and_bad_answer(tmp_path):
    root = hand_written(tmp_path, [("dax", CLASSES3)])
    with pytest.raises(ValueError, match=r"support\['blicket'\]\['images'\] needs >= 4"):
        load_open_mi(root, n_shot=4)
    path = root / "open_mi/query.json"
    entries = json.loads(path.read_text())
    entries[0]["answer"] = "wug"
    path.write_text(json.dumps(entries))
    with pytest.raises(ValueError, match="answer 'wug' must be one of"):
        load_open_mi(root)


def test_missing_image_names_the_file(tmp_path):
    root = hand_written(tmp_path, [("dax", CLASSES3)])
    (root / "open_mi/query/0.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"open_mi/query/0\.png.*example 0"):
        load_open_mi(root)
    assert len(load_open_mi(root, check_images=False)) == 1


def test_text_prompt_needs_real_names(data_root):
    with pytest.raises(ValueError, match="real_name"):
        load_open_mi(data_root, source="prebuilt", need_real_names=True)
    assert load_open_mi(data_root, source="query", need_real_names=True)[0].real_name


def test_prebuilt_entry_without_shot_key(tmp_path):
    root = write_fixture(tmp_path, 2, prebuilt_shots=(2,))
    (root / "open_mi/1-shot.json").write_text((root / "open_mi/2-shot.json").read_text())
    with pytest.raises(ValueError, match=r"1-shot\.json: entry 0 lacks '1-shot'"):
        load_open_mi(root, n_shot=1)
