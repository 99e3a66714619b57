"""The encoder and image figures in the plan: run ids, shared pretraining, skipped figures, and
bad input that stops before any job (data roots, layouts, D2 an encoder cannot take)."""

import copy
from pathlib import Path

import pytest
import yaml

from mmicl import plan
from mmicl.plan.config import ConfigError
from mmicl.plan.images import all_encoder_runs, encoder_run, unavailable_figures

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def tier(name="smoke", **images):
    cfg = copy.deepcopy(CONFIG)
    cfg["tier"] = name
    cfg["tiers"][name] = cfg["tiers"][name] or {}
    cfg["tiers"][name].setdefault("images", {}).update(images)
    return cfg


def test_new_keys_leave_existing_run_ids_alone():
    t = plan.tier_config(tier())
    for spec in plan.figure_runs(t, "fig4a"):
        assert "encoder" not in spec.run and "m2_data" not in spec.run
    runs = {s.run for s in plan.figure_runs(t, "app_omniglot")}
    # the Gaussian reference runs are Fig. 4a's (same ids: trained once)
    assert {s.run for s in plan.figure_runs(t, "fig4a")} & runs


def test_encoder_options_of_a_run_without_encoder_do_not_split_it():
    t = plan.tier_config(tier())
    p1, p2 = dict(t["stage1"]), dict(t["stage2"])
    a = plan.runs.stage2_spec(t, p1, {**p2, "encoder_pretrained": False}, 0)
    b = plan.runs.stage2_spec(t, p1, p2, 0)
    assert a.run == b.run


def test_pretraining_runs_are_shared_by_frozen_and_trainable_runs():
    t = plan.tier_config(tier())
    runs = [s for s in plan.figure_runs(t, "app_encoders")
            if s.params2["encoder"] == "mlp" and s.params2["encoder_pretrained"]]
    assert len(runs) == 2  # frozen and trainable
    assert encoder_run(t, runs[0]) == encoder_run(t, runs[1])
    kinds = sorted(r.encoder["kind"] for r in all_encoder_runs(t))
    assert kinds == ["cnn", "mlp", "transformer", "vit", "vit"]  # glyph ViT at K2 = 32, 64


def test_mini_imagenet_figure_is_skipped_without_a_root(monkeypatch):
    monkeypatch.delenv("MINI_IMAGENET_ROOT", raising=False)
    t = plan.tier_config(tier())
    assert "app_miniimagenet" not in t["figures"]
    (line,) = t["skipped_figures"]
    assert line.startswith("app_miniimagenet skipped: no Mini-ImageNet")
    assert "MINI_IMAGENET_ROOT" in line and "docs/images.md" in line
    monkeypatch.setenv("MINI_IMAGENET_ROOT", str(ROOT))
    assert not unavailable_figures(plan.tier_config(tier()))


def test_missing_mini_imagenet_root_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=rf"Mini-ImageNet root {missing} .*does not exist"):
        plan.tier_config(tier(mini_imagenet_root=str(missing)))


def omniglot_tier(root):
    cfg = tier(omniglot_root=str(root))
    cfg["tiers"]["smoke"]["figures"]["app_omniglot"]["fixed"] = {
        "m2_data": "omniglot", "encoder": "vit", "eps2": 0.0}
    return cfg


def test_missing_omniglot_root_names_the_path_and_where_data_comes_from(tmp_path):
    with pytest.raises(ConfigError, match=rf"omniglot_root='{tmp_path / 'x'}' does not exist; "
                                          r"Omniglot is never downloaded.*brendenlake/omniglot"):
        plan.tier_config(omniglot_tier(tmp_path / "x"))


def test_omniglot_root_in_another_layout_names_the_expected_layout(tmp_path):
    (tmp_path / "images_background").mkdir()  # unzipped beside, not into, omniglot-py/
    with pytest.raises(ConfigError, match=r"no omniglot-py/images_background; expected the "
                                          r"layout <root>/omniglot-py/images_\{background"):
        plan.tier_config(omniglot_tier(tmp_path))


def test_real_omniglot_without_a_root_is_skipped_with_one_line():
    cfg = omniglot_tier("")
    t = plan.tier_config(cfg)
    assert "app_omniglot" not in t["figures"]
    assert any(line.startswith("app_omniglot skipped: no Omniglot")
               for line in t["skipped_figures"])


@pytest.mark.parametrize("encoder, D2, message", [
    ("transformer", 64, r"input_dim \(D2\)=64 is not a multiple of segment_len=128"),
    ("cnn", 8, r"input_dim \(D2\)=8.*>= 16"),
])
def test_a_D2_the_encoder_cannot_take_stops_at_planning(encoder, D2, message):
    cfg = tier()
    cfg["tiers"]["smoke"]["figures"]["app_encoders"]["grid"] = {
        "encoder": [encoder], "encoder_pretrained": [True], "freeze_encoder": [True]}
    cfg["tiers"]["smoke"]["figures"]["app_encoders"]["fixed"] = {"D2": D2}
    with pytest.raises(ConfigError, match=rf"figures\.app_encoders: .*{message}"):
        plan.tier_config(cfg)


def test_images_need_the_vit_and_the_vit_needs_images():
    cfg = tier()
    cfg["tiers"]["smoke"]["figures"]["app_omniglot"]["fixed"] = {"m2_data": "glyphs",
                                                                 "encoder": "mlp"}
    with pytest.raises(ConfigError, match=r"m2_data='glyphs' holds images: it needs "
                                          r"encoder=vit"):
        plan.tier_config(cfg)


def test_a_run_is_reused_only_with_the_encoder_it_was_trained_from(tmp_path):
    from mmicl import io
    from mmicl.train.cohort import same_encoder
    from mmicl.train.members import RunInputs

    io.write_json({"m2_encoder": {"checkpoint": "enc/a/encoder.pt"}}, tmp_path / "config.json")
    assert same_encoder(tmp_path, RunInputs(world="w", encoder_model="enc/a/encoder.pt"))
    assert not same_encoder(tmp_path, RunInputs(world="w", encoder_model="enc/b/encoder.pt"))
    io.write_json({}, tmp_path / "config.json")  # a run without encoder
    assert same_encoder(tmp_path, RunInputs(world="w"))
