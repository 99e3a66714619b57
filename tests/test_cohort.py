"""Cohorts: a run trained inside a stacked cohort ends like the same run trained alone."""

import json
from dataclasses import asdict

import pandas as pd
import pytest
import torch

from mmicl import io
from mmicl.cohort import (
    StackedModel, code_version, fit_cohort, resolve_backend, stage1_member,
    stage2_member, train_cohort,
)
from mmicl.config import TrainConfig, plan_cohorts
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


# ---------------------------------------------------------------------------------------------
# cohorts in the workflow: planning, reuse of up-to-date members, the train-cohort command


def test_plan_cohorts_partitions_by_key_in_balanced_contiguous_chunks():
    items = [("a", i) for i in range(9)] + [("b", i) for i in range(3)] + [("a", 9)]
    plans = plan_cohorts(items, key=lambda item: item[0], size=4, label=lambda k: f"pe={k}")
    # every item exactly once, each cohort one key, order kept
    assert [m for p in plans for m in p.members] == [m for m in items if m[0] == "a"] + \
        [m for m in items if m[0] == "b"]
    # 10 a's in ceil(10/4) = 3 cohorts, bounds round(j * 10 / 3) = 0, 3, 7, 10
    assert [len(p.members) for p in plans] == [3, 4, 3, 3]
    assert all(len({m[0] for m in p.members}) == 1 for p in plans)
    assert [p.name for p in plans] == ["000_pe_a", "001_pe_a", "002_pe_a", "003_pe_b"]
    assert plan_cohorts(items, key=lambda item: item[0], size=4,
                        label=lambda k: f"pe={k}") == plans  # deterministic
    assert len(plan_cohorts(items, key=lambda item: item[0], size=1)) == len(items)
    with pytest.raises(ValueError, match="size must be >= 1"):
        plan_cohorts(items, key=lambda item: item[0], size=0)


def test_resolve_backend():
    assert resolve_backend("auto", "cpu") == "sequential"
    assert resolve_backend("auto", "cuda:0") == "bmm"
    assert resolve_backend("vmap", "cpu") == "vmap"
    with pytest.raises(ValueError, match="'stacked' is unknown"):
        resolve_backend("stacked", "cpu")


def assert_equal_nested(a, b):
    """Bit-identical tensors inside nested dicts / lists."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_equal_nested(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_equal_nested(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def _builders(tmp_path, cfg, name, log):
    def build(i, K, seed, B):
        def make():
            log.append(i)
            return stage1_member(make_world(seed, K, 32, cfg.content_dim), SequenceSpec(B=B), cfg,
                                 TRAIN, tmp_path / name / str(i), seed, test_set_size=48,
                                 meta={"run": f"K={K}"})
        return make
    return [build(i, *m) for i, m in enumerate(MEMBERS)]


@pytest.mark.parametrize("backend", ["sequential", "bmm"])
def test_train_cohort_keeps_up_to_date_members_and_retrains_stale_ones(tmp_path, backend):
    cfg = CFGS["rope"]
    log = []
    done = train_cohort(_builders(tmp_path, cfg, "c", log), backend=backend, progress=False,
                        attention_sequences=4)
    assert len(done["trained"]) == 3 and not done["reused"]
    if backend == "sequential":  # built one at a time, each exactly its solo run
        assert log == [0, 1, 2]
        K, seed, B = MEMBERS[1]
        train_run(make_world(seed, K, 32, cfg.content_dim), SequenceSpec(B=B), cfg, TRAIN,
                  tmp_path / "solo", seed, test_set_size=48, attention_sequences=4,
                  progress=False, meta={"run": f"K={K}"})
        for name in ("model.pt", "snapshots.pt", "curve.parquet", "attention.parquet"):
            if name.endswith(".pt"):
                a, b = (io.load_torch(d / name) for d in (tmp_path / "c" / "1", tmp_path / "solo"))
                assert_equal_nested(a, b)
            else:
                pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "c" / "1" / name),
                                              pd.read_parquet(tmp_path / "solo" / name))
    member = [tmp_path / "c" / str(i) for i in range(3)]
    before = {i: io.load_torch(member[i] / "model.pt") for i in range(3)}
    first_bytes = (member[0] / "model.pt").read_bytes()
    # member 1 loses a file, member 2 was trained by other code: both are retrained, 0 is kept
    (member[1] / "curve.parquet").unlink()
    written = json.loads((member[2] / "config.json").read_text())
    io.write_json({**written, "code_version": "older"}, member[2] / "config.json")
    old_mtime = (member[0] / "model.pt").stat().st_mtime_ns
    done = train_cohort(_builders(tmp_path, cfg, "c", log), backend=backend, progress=False,
                        attention_sequences=4)
    assert done["reused"] == [member[0]] and sorted(done["trained"]) == member[1:]
    assert (member[0] / "model.pt").read_bytes() == first_bytes
    assert (member[0] / "model.pt").stat().st_mtime_ns >= old_mtime  # touched for Snakemake
    assert json.loads((member[2] / "config.json").read_text())["code_version"] == code_version()
    for i in (1, 2):  # retrained to the same result (deterministic training)
        assert (member[i] / "curve.parquet").exists()
        after = io.load_torch(member[i] / "model.pt")
        assert all(torch.equal(after[k], v) for k, v in before[i].items())
    # reuse=False retrains everything
    done = train_cohort(_builders(tmp_path, cfg, "c", log), backend=backend, progress=False,
                        attention_sequences=4, reuse=False)
    assert len(done["trained"]) == 3 and not done["reused"]


def test_train_cohort_command_checks_its_members(tmp_path):
    from mmicl.cli import main
    from mmicl.data.worlds import save_world

    world = tmp_path / "w.parquet"
    save_world(make_world(0, 64, 32, 16), world)
    spec = {"run": "r", "seed": 0, "device": "cpu",
            "params": {"K": 64, "L": 32, "D": 16, "N": 8, "B": 4, "p_bursty": 1.0, "p_novel": 0.0,
                       "eps": 0.1, "alpha": 0.0, "no_repeats": False, "pe": "rope",
                       "rope_impl": "reference", "rope_theta": 10000, "n_layers": 2, "n_heads": 1,
                       "rms_norm": True, "mlp_variant": "reference"},
            "train": {**asdict(TRAIN), "iterations": 10, "eval_every": 10,
                      "checkpoint_every": 10, "snapshot_every": 10},
            "eval": {"test_set_size": 16, "attention_sequences": 4}}
    entry = {"spec": spec, "world": str(world), "out_dir": str(tmp_path / "run")}
    with pytest.raises(SystemExit, match=r"--members\[0\]: Stage-1 entry lacks out_dir"):
        main(["train-cohort", "--members", json.dumps([{"spec": spec, "world": str(world)}])])
    with pytest.raises(SystemExit, match="non-empty JSON list"):
        main(["train-cohort", "--members", "[]"])
    other = {**entry, "spec": {**spec, "eval": {"test_set_size": 16, "attention_sequences": 8}}}
    with pytest.raises(SystemExit, match="shares one device and attention_sequences"):
        main(["train-cohort", "--members", json.dumps([entry, other])])
    members = tmp_path / "members.json"
    members.write_text(json.dumps([entry]))
    main(["train-cohort", "--members", f"@{members}", "--no-progress"])
    assert json.loads((tmp_path / "run" / "config.json").read_text())["meta"]["run"] == "r"
