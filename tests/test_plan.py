"""Planning a tier: config validation, tier merging, run ids and specs, the runs each figure
needs, and cohorts that keep a targeted rebuild targeted."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT, SCHEMA, base_config, stage1, stage2, tier
from mmicl import plan
from mmicl.figures import FIGURE_STAGE
from mmicl.plan.config import TIERS
from mmicl.specs import RunSpec, derive_seed, resolve


def _load(cfg):
    plan.validate_schema(cfg, SCHEMA)
    return plan.tier_config(cfg)


@pytest.mark.parametrize("name", TIERS)
def test_shipped_tiers_validate_and_plan(name):
    t = tier(name)
    assert t["tier"] == name
    runs = plan.all_runs(t)
    assert runs and len({s.key for s in runs}) == len(runs)
    assert [s.stage for s in runs] == sorted(s.stage for s in runs)  # Stage 1 first


def test_smoke_overrides_merge_into_defaults():
    t = tier("smoke")
    assert t["stage1"]["K"] == 128          # overridden
    assert t["stage1"]["L"] == 32           # inherited
    assert t["train"]["iterations"] == 20


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["defaults"]["stage1"].update(burstyness=3),
     r"defaults\.stage1: unknown key\(s\) 'burstyness'"),
    (lambda c: c.update(learning_rate=1), "'learning_rate'"),
    (lambda c: c["tiers"].update(laptop={"stage1": {"pe": "sinusoidal"}}),
     r"tiers\.laptop\.stage1\.pe: 'sinusoidal'.*ape, rope, alibi, hybrid"),
    (lambda c: c["defaults"]["figures"].update(fig2d={"grid": {"pe": ["ape", "nope"]}}),
     r"fig2d.*pe='nope'.*ape, rope, alibi, hybrid"),
    (lambda c: c["defaults"]["figures"]["fig2a"]["grid"].update(K=[100]),
     r"fig2a.*K=100 must be a multiple of L=32"),
    (lambda c: c["defaults"]["stage1"].update(B=3), r"N=8.*B=3"),
    (lambda c: c["defaults"]["stage1"].update(D=64, pe="ape"), "n_heads"),
    (lambda c: c.update(tier="huge"), r"tier='huge'.*smoke, laptop, holds, paper"),
    (lambda c: c["defaults"]["figures"].update(fig99={"grid": {"K": [64]}}),
     "unknown figure 'fig99'"),
    (lambda c: c["defaults"]["train"].update(eval_every=5000),
     r"defaults|train.*eval_every=5000 exceeds iterations"),
    (lambda c: c["defaults"]["interventions"].update(zeroing=["everything"]),
     r"interventions\.zeroing\.0: 'everything' is not allowed"),
])
def test_bad_config_names_the_key(edit, message):
    cfg = base_config()
    edit(cfg)
    with pytest.raises(plan.ConfigError, match=message):
        _load(cfg)


def test_a_tier_can_build_only_some_figures():
    cfg = base_config()
    cfg["tiers"]["few"] = {"figures_only": ["table2", "fig5"], "stage1": {"n_layers": 4}}
    t = _load({**cfg, "tier": "few"})
    assert set(t["figures"]) == {"fig5", "table2"}
    assert {s.params1["n_layers"] for s in plan.all_runs(t)} >= {4}
    assert "figures_only" not in t
    cfg["tiers"]["few"]["figures_only"] = ["table2", "fig99"]
    with pytest.raises(plan.ConfigError, match=r"tiers\.few\.figures_only: unknown figure\(s\) "
                                               r"fig99; the tier's figures are: fig2a"):
        _load({**cfg, "tier": "few"})


def test_run_ids_are_readable_and_ignore_irrelevant_settings():
    t = tier("laptop")
    spec = stage1(t, K=1024, eps=0.4, p_bursty=0.5, pe="rope", rope_impl="standard",
                  no_repeats=True)
    assert spec.run == ("pe=rope_K=1024_B=4_eps=0.4_alpha=0_layers=2_heads=1"
                        "_p_bursty=0.5_no_repeats=true_rope_impl=standard")
    other = "rope" if t["stage1"]["pe"] != "rope" else "ape"
    # RoPE settings of a non-RoPE model do not make a new run
    a = stage1(t, pe=other, rope_impl="standard") if other == "ape" else stage1(t, pe="ape")
    assert a.run == stage1(t, pe="ape").run and "rope_impl" not in a.run


def test_spec_json_round_trip_and_bad_input():
    t = tier("laptop")
    for spec in (stage1(t, K=512), stage2(t, K2=32, p1={"n_layers": 3}),
                 stage2(t, early_fusion=True)):
        again = RunSpec.from_json(spec.to_json())
        assert again == spec and again.key == spec.key
        assert again.fingerprint() == spec.fingerprint()
        assert again.train == spec.train and again.params2 == spec.params2
    data = json.loads(stage1(t).to_json())
    del data["train"]
    with pytest.raises(ValueError, match="here: missing key 'train'"):
        RunSpec.from_dict(data, "here")
    data = json.loads(stage1(t).to_json())
    data["train"]["lerning_rate"] = 1
    with pytest.raises(ValueError, match="here: train: unknown key.*'lerning_rate'"):
        RunSpec.from_dict(data, "here")
    with pytest.raises(ValueError, match="stage=3"):
        RunSpec.from_dict({**json.loads(stage1(t).to_json()), "stage": 3})


def test_stage2_spec_carries_its_parent_and_world():
    t = tier("laptop")
    spec = stage2(t, K2=128, p1={"n_layers": 3})
    parent = plan.parent(t, spec)
    assert parent.stage == 1 and parent.run == spec.stage1_run and parent.seed == spec.seed
    assert parent.params1["n_layers"] == 3
    w = resolve(spec).world
    assert (w.K1, w.K2, w.L2) == (t["stage1"]["K"], 128, 32) and w.m1 == resolve(parent).world
    assert plan.parent(t, stage2(t, early_fusion=True)) is None


def test_derived_seeds_follow_the_documented_hash_in_any_process():
    expected = int.from_bytes(hashlib.sha256(b"3:init").digest()[:4], "little")
    assert derive_seed(3, "init") == expected
    assert len({derive_seed(0, p) for p in ("init", "train-data", "eval-data")}) == 3
    code = "from mmicl.specs import derive_seed; print(derive_seed(3, 'init'))"
    for hashseed in ("1", "2"):  # no dependence on Python's per-process hash salt
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, env={"PYTHONHASHSEED": hashseed, "PATH": ""})
        assert int(out.stdout) == expected


def test_runs_shared_between_figures_are_planned_once():
    t = tier("laptop")
    runs = plan.all_runs(t)
    stage1_figures = [f for f in t["figures"] if FIGURE_STAGE[f] == 1]
    per_figure = sum(len(plan.figure_runs(t, f)) for f in stage1_figures)
    assert sum(s.stage == 1 for s in runs) < per_figure
    default = stage1(t).key
    users = [f for f in stage1_figures if default in {s.key for s in plan.figure_runs(t, f)}]
    assert len(users) >= 2


@pytest.mark.parametrize("name", TIERS)
@pytest.mark.parametrize("figure", ["table2", "fig2c", "fig5", "fig6", "fig4d"])
def test_building_one_figure_trains_exactly_the_runs_it_needs(name, figure):
    t = tier(name)
    cohorts = plan.plan_cohorts(t)
    needed = {s.key for s in plan.needed_runs(t, figure)}
    trained = {m.key for c in cohorts if any(m.key in needed for m in c.members)
               for m in c.members}
    assert trained == needed
    if FIGURE_STAGE[figure] == 2:  # Stage-1 parents included, none of other figures
        assert any(k[0] == 1 for k in needed)


def test_cohorts_share_one_shape_and_respect_the_size():
    t = tier("laptop")
    cohorts = plan.plan_cohorts(t)
    assert sorted((m.key for c in cohorts for m in c.members), key=str) == \
        sorted((s.key for s in plan.all_runs(t)), key=str)
    assert max(len(c.members) for c in cohorts) <= t["cohorts"]["size"]
    for c in cohorts:
        assert len({plan.cohorts.shape_key(m)[0] for m in c.members}) == 1, c.name
        assert len({m.stage for m in c.members}) == 1
    sizes = [len(c.members) for c in plan.plan_cohorts(tier("laptop", cohorts={"size": 3}))]
    assert max(sizes) == 3 and min(sizes) >= 1


def test_planning_the_workflow_does_not_import_torch():
    # The Snakefile plans every job on start, and every Slurm job re-reads it: planning all
    # three tiers (runs, cohorts, resolved specs) must stay torch-free.
    code = (
        "import sys, yaml\n"
        "from mmicl import plan\n"
        "from mmicl.specs import resolve\n"
        f"cfg = yaml.safe_load(open({str(ROOT / 'config.yaml')!r}))\n"
        "for name in ('smoke', 'laptop', 'paper'):\n"
        "    cfg['tier'] = name\n"
        "    t = plan.tier_config(cfg)\n"
        "    [resolve(m) for c in plan.plan_cohorts(t) for m in c.members]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'pandas')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_table_figure_and_findings_jobs_do_not_import_torch():
    # A third of a tier's jobs only read tables and draw (collect, figures, findings); torch's
    # import (~1.2 s of CPU each, on 2 cores) is paid by the jobs that train or analyse models.
    code = (
        "import sys\n"
        "from mmicl.cli import cmd_collect, cmd_figure, cmd_findings\n"
        "import mmicl.analysis.tables, mmicl.analysis.findings, mmicl.figures.common\n"
        "from mmicl.figures import FIGURES, figure_module\n"
        "[figure_module(name) for name in FIGURES]\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert out.stdout.strip() == "False", "a table, figure or findings job imports torch"


def test_job_priority_puts_prerequisites_first_then_the_longest_job():
    from mmicl.plan.costs import PREREQUISITE_PRIORITY, job_priority, run_cost

    t = tier("laptop")
    short = stage1(t, K=512)
    long = stage1(t, K=512, n_layers=4)  # the same steps, twice the layers
    assert run_cost(long).cpu_s > 1.3 * run_cost(short).cpu_s
    assert job_priority([long]) > job_priority([short]) > 0
    assert job_priority([short, short]) == pytest.approx(2 * job_priority([short]), abs=1)
    # a job others wait for beats any amount of ordinary work
    many = [stage1(t, seed=s, K=512, n_layers=4) for s in range(20)]
    assert job_priority([short], prerequisite=True) > job_priority(many)
    assert job_priority((), prerequisite=True) == PREREQUISITE_PRIORITY
