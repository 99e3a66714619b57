"""One loop for one or many runs: a run trained inside a stacked (vmap) cohort ends like the same
run trained alone, a killed cohort resumes to the same end, and a workflow cohort job keeps its
up-to-date members."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from helpers import member, stage1, stage2, tier, train
from helpers import train as train_
from mmicl import io, paths, plan
from mmicl.fingerprint import code_version
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.train.cohort import Entry, train_cohort
from mmicl.train.loop import fit
from mmicl.train.stacking import Stack

TRAIN = {"batch_size": 16, "iterations": 30, "eval_every": 10, "checkpoint_every": 10,
         "snapshot_every": 10, "snapshot_dense_every": 0, "snapshot_dense_until": 0}
SMALL_D = {"ape": 15, "hybrid": 14, "rope": 16, "alibi": 16}


def small_tier(tmp_path, **overrides):
    """The smoke tier at test sizes (small widths, 30 steps), with `overrides` merged in."""
    base = {"stage1": {"D": SMALL_D}, "train": TRAIN, "train2": TRAIN, "stage2": {"D2": 8},
            "eval": {"test_set_size": 48, "attention_sequences": 4}}
    return tier("smoke", results=tmp_path / "results", **plan.deep_merge(base, overrides))


# (K, seed, B) of the three members; member 1 is compared with its solo run
MEMBERS = [(64, 0, 4), (128, 1, 2), (64, 2, 4)]


def max_abs_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def assert_same_run(a_dir, b_dir, a_curve, b_curve, label, tol=1e-5):
    a, b = io.load_torch(a_dir / "model.pt"), io.load_torch(b_dir / "model.pt")
    diff = max_abs_diff(a, b)
    print(f"\n{label}: max |stacked - solo| weight difference = {diff:.3g}")
    assert diff <= tol
    pd.testing.assert_frame_equal(a_curve[["iteration", "split", "accuracy"]],
                                  b_curve[["iteration", "split", "accuracy"]])
    assert (a_curve.loss - b_curve.loss).abs().max() < 1e-5
    pd.testing.assert_frame_equal(pd.read_parquet(a_dir / "curve.parquet"), a_curve)
    ca, cb = (io.read_json(d / "config.json") for d in (a_dir, b_dir))
    assert ca["fingerprint"] == cb["fingerprint"] and ca["num_params"] == cb["num_params"]
    assert ca["cohort"] == {"size": 3, "index": 1, "stacked": True}
    sa, sb = (io.load_torch(d / "snapshots.pt") for d in (a_dir, b_dir))
    assert sa["iterations"] == sb["iterations"]
    for it in sa["iterations"]:
        assert max_abs_diff({**sa["base"], **sa["deltas"][it]},
                            {**sb["base"], **sb["deltas"][it]}) <= tol
    ta, tb = (io.load_torch(d / "testsets.pt") for d in (a_dir, b_dir))
    assert all(torch.equal(ta["sets"][s][f], tb["sets"][s][f])
               for s in tb["sets"] for f in tb["sets"][s])


@pytest.mark.parametrize("params", [{"pe": "ape"}, {"pe": "rope"},
                                    {"pe": "alibi", "n_heads": 2}, {"pe": "hybrid"}])
def test_stage1_member_of_a_stacked_cohort_matches_its_solo_run(tmp_path, params):
    t = small_tier(tmp_path / "stacked")
    members = [member(t, stage1(t, seed, K=K, B=B, **params)) for K, seed, B in MEMBERS]
    curves = fit(members, "cpu", stacked=True, progress=False)
    solo_t = small_tier(tmp_path / "solo")
    K, seed, B = MEMBERS[1]
    solo_dir, solo_curve = train(solo_t, stage1(solo_t, seed, K=K, B=B, **params))
    assert_same_run(members[1].out_dir, solo_dir, curves[1], solo_curve, f"stage1 {params}")
    w = [io.load_torch(m.out_dir / "model.pt")["out.weight"] for m in members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])  # own data, own init


def test_stage2_member_of_a_stacked_cohort_matches_its_solo_run(tmp_path):
    t = small_tier(tmp_path / "stacked", stage1={"K": 64})
    specs = [stage2(t, seed, K2=K2) for K2, seed in ((64, 0), (32, 1), (64, 0))]
    specs[2] = stage2(t, 0, K2=32)  # same parent as member 0: its frozen decoder is shared
    members = [member(t, s) for s in specs]
    stack = Stack([m.model for m in members])
    assert any(name.startswith("decoder.layers.") for name in stack.params)  # two parents
    curves = fit(members, "cpu", stacked=True, progress=False)
    solo_t = small_tier(tmp_path / "solo", stage1={"K": 64})
    solo_dir, solo_curve = train(solo_t, stage2(solo_t, 1, K2=32))
    assert_same_run(members[1].out_dir, solo_dir, curves[1], solo_curve, "stage2")
    parent = io.load_torch(paths.run_file(t["results"], stage1(t, 1), "model.pt"))
    final = io.load_torch(members[1].out_dir / "model.pt")
    assert all(torch.equal(final["decoder." + k], v) for k, v in parent.items()
               if k.startswith("layers."))  # the frozen blocks did not move


def test_frozen_parameters_equal_in_every_member_are_held_once():
    cfg = DecoderConfig(content_dim=16, n_labels=32, pe="rope")
    models = [Decoder(cfg) for _ in range(3)]
    for m in models[1:]:
        m.load_state_dict(models[0].state_dict())
    for m in models:
        m.layers.requires_grad_(False)
    with torch.no_grad():
        models[1].out.weight.add_(1.0)  # trainable, differs
    stack = Stack(models)
    assert set(stack.shared) == {n for n, _ in models[0].named_parameters()
                                 if n.startswith("layers.")}
    assert all(v.shape == models[0].get_parameter(k).shape for k, v in stack.shared.items())
    assert stack.params["out.weight"].shape[0] == 3


def test_members_must_share_the_model_shape():
    a = Decoder(DecoderConfig(content_dim=16, n_labels=32, pe="rope"))
    b = Decoder(DecoderConfig(content_dim=16, n_labels=32, pe="rope", n_layers=3))
    with pytest.raises(ValueError, match="shares one model configuration"):
        Stack([a, b])


def test_stacked_module_with_batchnorm_buffers_matches_solo():
    """Buffers are stacked per member: BatchNorm statistics (the CNN encoder) train under vmap
    exactly as they do alone."""
    torch.manual_seed(0)
    net = lambda: torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6))  # noqa
    models = [net(), net()]
    solo = [net(), net()]
    for s, m in zip(solo, models):
        s.load_state_dict(m.state_dict())
    x = torch.randn(2, 5, 4)

    class Wrap(torch.nn.Module):  # Stack calls model(*args, validate=False)
        def __init__(self, inner):
            super().__init__()
            self.inner, self.cfg = inner, "bn"

        def forward(self, x, validate=True):
            return self.inner(x)

    stack = Stack([Wrap(m) for m in models])
    stacked_out = stack._call(stack.params, stack.shared, stack.buffers, (x,))
    for i, s in enumerate(solo):
        torch.testing.assert_close(stacked_out[i], s(x[i]))
        torch.testing.assert_close(stack.buffers["inner.1.running_mean"][i],
                                   s[1].running_mean)


def test_killed_stacked_cohort_resumes_to_the_same_end(tmp_path):
    t = small_tier(tmp_path / "ref", stage1={"pe": "rope"})
    ref = fit([member(t, stage1(t, s, K=K, B=B)) for K, s, B in MEMBERS], "cpu", stacked=True,
              progress=False, write=False)
    t = small_tier(tmp_path / "killed", stage1={"pe": "rope"})
    members = [member(t, stage1(t, s, K=K, B=B)) for K, s, B in MEMBERS]
    calls, original = [0], members[0].sample

    def dies_at_step_25(gen):
        calls[0] += 1
        if calls[0] == 25:
            raise KeyboardInterrupt("killed")
        return original(gen)

    members[0].sample = dies_at_step_25
    ckpt = tmp_path / "cohort_resume.pt"
    with pytest.raises(KeyboardInterrupt):
        fit(members, "cpu", stacked=True, checkpoint=ckpt, progress=False)
    assert ckpt.exists() and not (members[0].out_dir / "model.pt").exists()
    resumed = fit([member(t, stage1(t, s, K=K, B=B)) for K, s, B in MEMBERS], "cpu",
                  stacked=True, checkpoint=ckpt, progress=False)
    assert not ckpt.exists()
    for a, b in zip(ref, resumed):
        pd.testing.assert_frame_equal(a, b)


def _entries(t, specs):
    from helpers import inputs
    return [Entry(s, paths.run_dir(t["results"], s), inputs(t, s)) for s in specs]


@pytest.mark.parametrize("backend", ["sequential", "vmap"])
def test_cohort_job_keeps_up_to_date_members_and_retrains_stale_ones(tmp_path, backend):
    t = small_tier(tmp_path / "c", stage1={"pe": "rope"})
    specs = [stage1(t, s, K=K, B=B) for K, s, B in MEMBERS]
    done = train_cohort(_entries(t, specs), backend=backend, progress=False)
    assert len(done["trained"]) == 3 and not done["reused"]
    dirs = [Path(paths.run_dir(t["results"], s)) for s in specs]
    if backend == "sequential":  # each member exactly its solo run, bit for bit
        solo_t = small_tier(tmp_path / "solo", stage1={"pe": "rope"})
        solo_dir, _ = train(solo_t, specs[1])
        for name in ("model.pt", "snapshots.pt"):
            a, b = io.load_torch(dirs[1] / name), io.load_torch(solo_dir / name)
            assert json.dumps(_shapes(a)) == json.dumps(_shapes(b))
            assert _equal(a, b)
        for name in ("curve.parquet", "attention.parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(dirs[1] / name),
                                          pd.read_parquet(solo_dir / name))
    before = {i: io.load_torch(dirs[i] / "model.pt") for i in range(3)}
    first_bytes = (dirs[0] / "model.pt").read_bytes()
    # member 1 loses a file, member 2 was trained by other code: both retrained, 0 kept
    (dirs[1] / "curve.parquet").unlink()
    written = io.read_json(dirs[2] / "config.json")
    io.write_json({**written, "code_version": "older"}, dirs[2] / "config.json")
    old_mtime = (dirs[0] / "model.pt").stat().st_mtime_ns
    done = train_cohort(_entries(t, specs), backend=backend, progress=False)
    assert done["reused"] == [dirs[0]] and sorted(done["trained"]) == dirs[1:]
    assert (dirs[0] / "model.pt").read_bytes() == first_bytes
    assert (dirs[0] / "model.pt").stat().st_mtime_ns >= old_mtime  # touched for Snakemake
    assert io.read_json(dirs[2] / "config.json")["code_version"] == code_version()
    for i in (1, 2):  # retrained to the same weights (deterministic training)
        after = io.load_torch(dirs[i] / "model.pt")
        assert all(torch.equal(after[k], v) for k, v in before[i].items())
    done = train_cohort(_entries(t, specs), backend=backend, progress=False, reuse=False)
    assert len(done["trained"]) == 3 and not done["reused"]


def _shapes(obj):
    if isinstance(obj, dict):
        return {str(k): _shapes(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_shapes(v) for v in obj]
    return list(obj.shape) if isinstance(obj, torch.Tensor) else obj


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b


def test_train_command_checks_its_members(tmp_path):
    from mmicl.cli import main

    t = small_tier(tmp_path, stage1={"pe": "rope"})
    (entry,) = [e.to_dict() for e in _entries(t, [stage1(t, 0, K=64)])]
    with pytest.raises(SystemExit, match=r"--members\[0\]: lacks out_dir"):
        main(["train", "--members", json.dumps([{k: v for k, v in entry.items()
                                                 if k != "out_dir"}])])
    with pytest.raises(SystemExit, match="non-empty JSON list"):
        main(["train", "--members", "[]"])
    bad = json.loads(json.dumps(entry))
    bad["spec"]["train"]["iterations"] = 0
    with pytest.raises(SystemExit, match=r"--members\[0\]: spec: train: iterations=0"):
        main(["train", "--members", json.dumps([bad])])
    members = tmp_path / "members.json"
    members.write_text(json.dumps([entry]))
    main(["train", "--members", f"@{members}", "--no-progress"])
    run_dir = tmp_path / entry["out_dir"]
    written = io.read_json(run_dir / "config.json")
    assert written["spec"]["run"] == entry["spec"]["run"]
    assert not (run_dir / "indicators.parquet").exists()
    # --indicators (the workflow's training job): the member is up to date, so it is kept, and
    # its indicators are those the stand-alone indicator command computes from its snapshots
    before = (run_dir / "model.pt").read_bytes()
    main(["train", "--members", f"@{members}", "--no-progress", "--indicators"])
    assert (run_dir / "model.pt").read_bytes() == before
    main(["indicators", "--run-dir", str(run_dir), "--out", str(tmp_path / "alone.parquet")])
    together = io.read_parquet(run_dir / "indicators.parquet")
    pd.testing.assert_frame_equal(together, io.read_parquet(tmp_path / "alone.parquet"))
    assert together.iteration.nunique() > 1 and (together.family == "unimodal").all()


@pytest.mark.parametrize("threshold", [0.04, 0.02])  # members stop at 10/60/40, 10/20/10
def test_stop_rule_ends_each_member_where_its_solo_run_ends(tmp_path, threshold):
    """train until IC >= stop_at_ic (or iterations): a member of a stacked cohort stops at the
    step its solo run stops, with the same weights, while the others train on."""
    train = {**TRAIN, "iterations": 60, "stop_at_ic": threshold}
    t = small_tier(tmp_path / "stacked", stage1={"pe": "rope"}, train=train)
    specs = [stage1(t, s, K=K, B=B) for K, s, B in MEMBERS]
    curves = fit([member(t, s) for s in specs], "cpu", stacked=True, progress=False)
    solo_t = small_tier(tmp_path / "solo", stage1={"pe": "rope"}, train=train)
    ends = []
    for spec, curve in zip(specs, curves):
        solo_dir, solo_curve = train_(solo_t, spec)
        end = int(curve.iteration.max())
        ends.append(end)
        assert end == int(solo_curve.iteration.max())
        ic = curve[curve.split == "IC"].set_index("iteration").accuracy
        assert ic[end] >= threshold or end == 60
        assert all(ic[it] < threshold for it in ic.index if 0 < it < end and it % 10 == 0)
        a = io.load_torch(Path(paths.run_dir(t["results"], spec)) / "model.pt")
        b = io.load_torch(solo_dir / "model.pt")
        assert max_abs_diff(a, b) <= 1e-5
        snaps = io.load_torch(solo_dir / "snapshots.pt")
        assert max(snaps["iterations"]) == end
    assert len(set(ends)) > 1 and min(ends) < 60  # the rule fired, at different steps
