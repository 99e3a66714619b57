"""Config validation, tier merging and run addressing."""

import copy
from pathlib import Path

import pytest
import yaml

from mmicl import config as mcfg
from mmicl.figures import FIGURE_STAGE

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


@pytest.fixture(scope="module")
def base_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _load(cfg):
    mcfg.validate_schema(cfg, SCHEMA)
    return mcfg.tier_config(cfg)


@pytest.mark.parametrize("tier", mcfg.TIERS)
def test_shipped_tiers_validate(base_config, tier):
    cfg = copy.deepcopy(base_config)
    cfg["tier"] = tier
    resolved = _load(cfg)
    assert resolved["tier"] == tier
    assert mcfg.all_runs(resolved)


def test_smoke_overrides_merge_into_defaults(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["tier"] = "smoke"
    tier = _load(cfg)
    assert tier["stage1"]["K"] == 128          # overridden
    assert tier["stage1"]["L"] == 32           # inherited
    assert tier["train"]["iterations"] == 20


def test_unknown_key_names_the_key(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["defaults"]["stage1"]["burstyness"] = 3
    with pytest.raises(mcfg.ConfigError, match=r"defaults\.stage1: unknown key\(s\) 'burstyness'"):
        _load(cfg)


def test_unknown_top_level_key(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["learning_rate"] = 1
    with pytest.raises(mcfg.ConfigError, match="'learning_rate'"):
        _load(cfg)


def test_unknown_position_encoding_names_expected_values(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["tiers"]["laptop"] = {"stage1": {"pe": "sinusoidal"}}
    with pytest.raises(mcfg.ConfigError, match=r"tiers\.laptop\.stage1\.pe: 'sinusoidal'.*ape, rope, alibi, hybrid"):
        _load(cfg)


def test_unknown_position_encoding_in_a_sweep(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["defaults"]["figures"]["fig2d"] = {"grid": {"pe": ["ape", "nope"]}}
    with pytest.raises(mcfg.ConfigError, match=r"fig2d.*pe='nope'.*ape, rope, alibi, hybrid"):
        _load(cfg)


def test_K_not_multiple_of_L(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["defaults"]["figures"]["fig2a"]["grid"]["K"] = [100]
    with pytest.raises(mcfg.ConfigError, match=r"fig2a.*K=100 must be a multiple of L=32"):
        _load(cfg)


def test_N_not_divisible_by_B(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["defaults"]["stage1"]["B"] = 3
    with pytest.raises(mcfg.ConfigError, match=r"N=8.*B=3"):
        _load(cfg)


def test_heads_must_divide_width(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["defaults"]["stage1"]["D"] = 64          # APE width 65 + 64 = 129
    with pytest.raises(mcfg.ConfigError, match="n_heads"):
        _load(cfg)


def test_undefined_tier(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["tier"] = "huge"
    with pytest.raises(mcfg.ConfigError, match=r"tier='huge'.*smoke, laptop, paper"):
        _load(cfg)


def test_unknown_figure(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["defaults"]["figures"]["fig99"] = {"grid": {"K": [64]}}
    with pytest.raises(mcfg.ConfigError, match="unknown figure 'fig99'"):
        _load(cfg)


def test_run_id_round_trip_and_readability(base_config):
    defaults = base_config["defaults"]["stage1"]
    params = {**defaults, "K": 1024, "eps": 0.4, "p_bursty": 0.5, "pe": "rope",
              "rope_impl": "standard", "no_repeats": True}
    rid = mcfg.run_id(params, defaults)
    assert rid == ("pe=rope_K=1024_B=4_eps=0.4_alpha=0_layers=2_heads=1"
                   "_p_bursty=0.5_no_repeats=true_rope_impl=standard")
    assert mcfg.parse_run_id(rid, defaults) == params


def test_irrelevant_rope_settings_do_not_create_a_new_run(base_config):
    defaults = base_config["defaults"]["stage1"]
    a = mcfg.run_id({**defaults, "pe": "ape", "rope_impl": "standard"}, defaults)
    b = mcfg.run_id({**defaults, "pe": "ape"}, defaults)
    assert a == b


def test_runs_shared_between_figures_are_listed_once(base_config):
    tier = _load(copy.deepcopy(base_config))
    runs = mcfg.all_runs(tier)
    assert len(runs) == len(set(runs))
    stage1_figures = [f for f in tier["figures"] if FIGURE_STAGE[f] == 1]
    per_figure = sum(len(mcfg.figure_runs(tier, f)) for f in stage1_figures)
    assert len(runs) < per_figure  # the default run appears in several figures
    default_id = mcfg.run_id(tier["stage1"], tier["stage1"])
    users = [f for f in stage1_figures if (default_id, 0) in mcfg.figure_runs(tier, f)]
    assert len(users) >= 2


def test_derived_seeds_are_distinct_and_stable():
    seeds = {mcfg.derive_seed(0, p) for p in ("init", "train-data", "eval-data")}
    assert len(seeds) == 3
    assert mcfg.derive_seed(3, "init") == mcfg.derive_seed(3, "init")
    assert mcfg.derive_seed(3, "init") != mcfg.derive_seed(4, "init")


def test_planning_the_workflow_does_not_import_torch():
    # The Snakefile imports mmicl.config to plan every job, and every Slurm job re-reads the
    # Snakefile: planning all three tiers (runs, cohorts, Stage-2 specs) must stay torch-free.
    import subprocess
    import sys

    code = (
        "import sys, yaml\n"
        "from mmicl import config as c\n"
        f"cfg = yaml.safe_load(open({str(ROOT / 'config.yaml')!r}))\n"
        "for tier in ('smoke', 'laptop', 'paper'):\n"
        "    cfg['tier'] = tier\n"
        "    t = c.tier_config(cfg)\n"
        "    c.stage1_cohorts(t), c.stage2_cohorts(t)\n"
        "    [c.stage2_specs(p1, p2) for fig in ('fig4a',) for p1, p2 in c.stage2_points(t, fig)]\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'pandas')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
