"""Cohorts: a run trained inside a stacked cohort ends like the same run trained alone."""

import json

import pandas as pd
import pytest
import torch

from mmicl import io
from mmicl.cohort import StackedModel, fit_cohort, stage1_member, stage2_member
from mmicl.config import TrainConfig
from mmicl.data.multimodal import MultimodalSpec
from mmicl.data.sequences import SequenceSpec
from mmicl.data.worlds import make_multimodal_world, make_world
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.models.multimodal import MultimodalConfig
from mmicl.train import train_run, train_stage2

TRAIN = TrainConfig(batch_size=16, iterations=30, eval_every=10, checkpoint_every=10,
                    snapshot_every=10)
FILES = ("model.pt", "snapshots.pt", "testsets.pt", "curve.parquet", "final.parquet",
         "attention.parquet", "config.json")
# (K, seed, B) of the three members; member 1 is compared against its solo run
MEMBERS = [(64, 0, 4), (128, 1, 2), (64, 2, 4)]
CFGS = {"ape": DecoderConfig(content_dim=15, n_labels=32, pe="ape"),
        "rope": DecoderConfig(content_dim=16, n_labels=32, pe="rope"),
        "alibi2": DecoderConfig(content_dim=16, n_labels=32, pe="alibi", n_heads=2)}


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def assert_same_run(cohort_dir, solo_dir, cohort_curve, solo_curve, label, tol=1e-5):
    for name in FILES:
        assert (cohort_dir / name).exists(), name
    a, b = io.load_torch(cohort_dir / "model.pt"), io.load_torch(solo_dir / "model.pt")
    diff = max_abs_diff(a, b)
    print(f"\n{label}: max |cohort - solo| weight difference = {diff:.3g}")
    assert diff <= tol
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=tol)
    # curves: same rows, same accuracies, losses equal up to rounding
    pd.testing.assert_frame_equal(cohort_curve[["iteration", "split", "accuracy"]],
                                  solo_curve[["iteration", "split", "accuracy"]])
    assert (cohort_curve.loss - solo_curve.loss).abs().max() < 1e-5
    pd.testing.assert_frame_equal(pd.read_parquet(cohort_dir / "curve.parquet"), cohort_curve)
    # same spec => same fingerprint; snapshots at the same iterations, same weights
    ca, cb = (json.loads((d / "config.json").read_text()) for d in (cohort_dir, solo_dir))
    assert ca["fingerprint"] == cb["fingerprint"] and ca["num_params"] == cb["num_params"]
    assert ca["trainable_params"] == cb["trainable_params"]
    assert ca["cohort"]["size"] == 3 and ca["cohort"]["index"] == 1
    sa, sb = (io.load_torch(d / "snapshots.pt") for d in (cohort_dir, solo_dir))
    assert sa["iterations"] == sb["iterations"]
    for it in sa["iterations"]:
        assert max_abs_diff({**sa["base"], **sa["deltas"][it]},
                            {**sb["base"], **sb["deltas"][it]}) <= tol
    ta, tb = (io.load_torch(d / "testsets.pt") for d in (cohort_dir, solo_dir))
    assert all(torch.equal(ta["sets"][s][f], tb["sets"][s][f])
               for s in tb["sets"] for f in tb["sets"][s])


def _stage1_members(tmp_path, cfg, backend_dir):
    return [stage1_member(make_world(seed, K, 32, cfg.content_dim), SequenceSpec(B=B), cfg,
                          TRAIN, tmp_path / backend_dir / str(i), seed, test_set_size=48,
                          meta={"run": f"K={K}"})
            for i, (K, seed, B) in enumerate(MEMBERS)]


@pytest.mark.parametrize("pe,backend", [("ape", "bmm"), ("rope", "bmm"), ("alibi2", "bmm"),
                                        ("rope", "vmap")])
def test_stage1_member_matches_solo_run(tmp_path, pe, backend):
    cfg = CFGS[pe]
    curves = fit_cohort(_stage1_members(tmp_path, cfg, "cohort"), TRAIN, progress=False,
                        attention_sequences=4, backend=backend)
    K, seed, B = MEMBERS[1]
    solo = train_run(make_world(seed, K, 32, cfg.content_dim), SequenceSpec(B=B), cfg, TRAIN,
                     tmp_path / "solo", seed, test_set_size=48, attention_sequences=4,
                     progress=False, meta={"run": f"K={K}"})
    assert_same_run(tmp_path / "cohort" / "1", tmp_path / "solo", curves[1], solo,
                    f"stage1 {pe} {backend}")
    # the members really differ (own data, own init)
    w = [io.load_torch(tmp_path / "cohort" / str(i) / "model.pt")["out.weight"] for i in range(3)]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])


def test_stage2_member_matches_solo_run(tmp_path):
    dec = DecoderConfig(content_dim=15, n_labels=32, pe="ape")
    cfg = MultimodalConfig(decoder=dec, m2_dim=8)
    stage1_state = Decoder(dec).state_dict()
    runs = [(64, 0), (32, 1), (64, 2)]  # (K2, seed)
    members = [stage2_member(make_multimodal_world(seed, 64, 32, 15, K2, 32, 8),
                             MultimodalSpec(), cfg, TRAIN, tmp_path / "cohort" / str(i), seed,
                             stage1_state, test_set_size=48, meta={"run": f"K2={K2}"})
               for i, (K2, seed) in enumerate(runs)]
    curves = fit_cohort(members, TRAIN, progress=False, attention_sequences=4)
    K2, seed = runs[1]
    solo = train_stage2(make_multimodal_world(seed, 64, 32, 15, K2, 32, 8), MultimodalSpec(), cfg,
                        TRAIN, tmp_path / "solo", seed, stage1_state, test_set_size=48,
                        attention_sequences=4, progress=False, meta={"run": f"K2={K2}"})
    assert_same_run(tmp_path / "cohort" / "1", tmp_path / "solo", curves[1], solo, "stage2")
    # the frozen decoder blocks did not move
    final = io.load_torch(tmp_path / "cohort" / "1" / "model.pt")
    assert all(torch.equal(final["decoder." + k], v) for k, v in stage1_state.items()
               if k.startswith("layers."))


def test_killed_cohort_resumes_to_the_same_end(tmp_path):
    cfg = CFGS["rope"]
    ref = fit_cohort(_stage1_members(tmp_path, cfg, "ref"), TRAIN, progress=False,
                     attention_sequences=4, write=False)
    members = _stage1_members(tmp_path, cfg, "killed")
    calls, original = [0], members[0].sample

    def dies_at_step_25(gen):
        calls[0] += 1
        if calls[0] == 25:
            raise KeyboardInterrupt("killed")
        return original(gen)

    members[0].sample = dies_at_step_25
    ckpt = tmp_path / "cohort_resume.pt"
    with pytest.raises(KeyboardInterrupt):
        fit_cohort(members, TRAIN, progress=False, checkpoint=ckpt, attention_sequences=4)
    assert ckpt.exists() and not (tmp_path / "killed" / "0" / "model.pt").exists()
    resumed = fit_cohort(_stage1_members(tmp_path, cfg, "killed"), TRAIN, progress=False,
                         checkpoint=ckpt, attention_sequences=4)
    assert not ckpt.exists()
    for a, b in zip(ref, resumed):
        pd.testing.assert_frame_equal(a, b)


def test_members_must_share_the_model_shape():
    a = Decoder(DecoderConfig(content_dim=16, n_labels=32, pe="rope"))
    b = Decoder(DecoderConfig(content_dim=16, n_labels=32, pe="rope", n_layers=3))
    with pytest.raises(ValueError, match="shares one model configuration"):
        StackedModel([a, b])


def test_stacked_state_is_the_solo_layout():
    models = [Decoder(CFGS["ape"]) for _ in range(3)]
    stack = StackedModel(models)
    for i, m in enumerate(models):
        state = stack.state(i)
        assert state.keys() == m.state_dict().keys()
        assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
        assert all(state[k].untyped_storage().nbytes() == v.numel() * v.element_size()
                   for k, v in state.items())  # compact copies, not views of the stack
