"""The Snakemake workflow: dry runs, lint, the Slurm profile, bad input, and the smoke tier end to end."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmicl import io, paths, plan
from mmicl.figures import FIGURES, TABLES, VLM_FIGURES
from mmicl.vlm.plan import missing_extra

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args, workdir=None, timeout=600, check=True, configfile=ROOT / "config.yaml"):
    """Run snakemake on this repository's Snakefile; with `workdir`, outputs land there."""
    cmd = SNAKEMAKE + ["--snakefile", str(ROOT / "Snakefile")]
    if workdir is not None:
        cmd += ["--directory", str(workdir), "--configfile", str(configfile)]
    cmd += list(args)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT if workdir is None else workdir, capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def resolved_tier(tier):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tier"] = tier
    return plan.tier_config(cfg)


def trained_models(dry_run_stdout: str, name: str = "model.pt") -> set[str]:
    """The model.pt (or other `name`) outputs of the training jobs of a `snakemake -n` plan."""
    models, rule = set(), None
    for line in dry_run_stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("output:") and rule and rule.startswith("train_stage"):
            models |= set(re.findall(rf"results/[^,\s]+/{re.escape(name)}", line))
    return models


def job_counts(dry_run_stdout: str) -> dict[str, int]:
    """Jobs per rule of `snakemake -n --quiet rules`; the per-cohort rules
    (train_stage1_rope_L2_H1_1a2b3c4d, ...) and encoder pretraining rules are counted under
    their family name (train_stage1, pretrain_encoder)."""
    per_rule = {}  # (the table may be printed more than once)
    for line in dry_run_stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            per_rule[parts[0]] = int(parts[1])
    counts: dict[str, int] = {}
    for rule, n in per_rule.items():
        name = re.sub(r"^(train_stage\d|indicators_stage\d|pretrain_encoder)_\w+$", r"\1", rule)
        counts[name] = counts.get(name, 0) + n
    return counts


def test_dry_run_lists_every_figure_and_trains_each_run_once(tmp_path):
    out = snakemake("-n", "--quiet", "rules", workdir=tmp_path).stdout
    tier = resolved_tier("laptop")
    counts = job_counts(out)
    cohorts = plan.plan_cohorts(tier)
    for stage in (1, 2):
        n = sum(c.stage == stage for c in cohorts)
        assert counts[f"train_stage{stage}"] == n
        assert f"indicators_stage{stage}" not in counts  # indicators come with the training job
    # every figure, less those whose data this machine lacks (Mini-ImageNet; one line each)
    built = [name for name in FIGURES if name in tier["figures"]]
    assert set(FIGURES) - set(built) <= {"app_miniimagenet"}
    assert sum(v for k, v in counts.items() if k.startswith("figure_")) == len(built)
    full = snakemake("-n", workdir=tmp_path).stdout
    for name in built:
        assert f"results/laptop/figures/{name}.pdf" in full
    # each run's model and indicators are outputs of exactly one training job
    models = trained_models(full)
    assert models == {paths.run_file("results", s, "model.pt") for s in plan.all_runs(tier)}
    assert trained_models(full, paths.INDICATORS_FILE) == \
        {paths.run_file("results", s, paths.INDICATORS_FILE) for s in plan.all_runs(tier)}


@pytest.mark.parametrize("figure", ["table2", "fig2c", "fig5"])
def test_building_one_figure_trains_exactly_its_runs(tmp_path, figure):
    """Targeted rebuilds stay targeted: the dry-run plan of one figure trains its runs and the
    Stage-1 runs they start from, nothing that only other figures need."""
    out = snakemake("-n", figure, workdir=tmp_path).stdout
    needed = plan.needed_runs(resolved_tier("laptop"), figure)
    assert trained_models(out) == {paths.run_file("results", s, "model.pt") for s in needed}


def test_lint_is_clean():
    proc = snakemake("--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


def test_slurm_profile_dry_run_resolves(tmp_path):
    # `--profile slurm` typed at the repository root, as a user would.
    proc = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "-n", "--config", "tier=smoke",
                                       f"results={tmp_path}/results"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "train_stage1" in proc.stdout


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(tier="huge"), "tier='huge' is not defined"),
    (lambda c: c["defaults"]["stage1"].update(bursty=2), "unknown key(s) 'bursty'"),
    (lambda c: c["defaults"]["stage1"].update(pe="sinusoidal"),
     "expected one of: ape, rope, alibi, hybrid"),
    (lambda c: c["defaults"]["stage1"].update(B=3), "N=8 is not divisible by B=3"),
    (lambda c: c["defaults"]["figures"]["fig2a"]["grid"].update(K=[100]),
     "K=100 must be a multiple of L=32"),
    (lambda c: c["defaults"]["figures"]["fig4a"]["grid"].update(K2=[100]),
     "K2=100 must be a multiple of L2=32"),
    (lambda c: c["defaults"]["stage2"].update(L2=64), "L2=64 exceeds L1=32"),
    (lambda c: c["defaults"]["figures"]["fig5"].update(grid={"stage1.depth": [2]}),
     "'stage1.depth' is neither a Stage-2 parameter"),
    (lambda c: c["defaults"]["interventions"].update(knockout=["half"]),
     "interventions.knockout.0: 'half' is not allowed"),
])
def test_bad_config_stops_before_any_job(tmp_path, edit, message):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    edit(cfg)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = snakemake("-n", workdir=tmp_path, configfile=bad, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


def _job_resources(stdout: str) -> dict[str, list[dict]]:
    """rule name -> the resources of each of its jobs in a dry run."""
    out, rule = {}, None
    for line in stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif line.strip().startswith("resources:") and rule:
            pairs = (kv.split("=", 1) for kv in line.split(":", 1)[1].split(","))
            out.setdefault(rule, []).append({k.strip(): v.strip() for k, v in pairs})
    return out


def test_slurm_resources_of_every_rule_kind_come_from_config_and_environment(tmp_path):
    env = {**os.environ, "MMICL_SLURM_PARTITION": "gpuq", "MMICL_SLURM_ACCOUNT": "lab"}
    proc = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "-n", "--config", "tier=smoke",
                                       "device=cuda", f"results={tmp_path}/results"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = _job_resources(proc.stdout)
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())["slurm"]["resources"]
    kinds = {"train": [r for r in jobs if r.startswith("train_stage")],
             "analysis": [r for r in jobs if r.startswith(("indicators_", "analyze_stage2",
                                                           "regression"))],
             "default": ["world", "multimodal_world", "collect", "collect_indicators",
                         "findings", "figure_fig2c"]}
    assert all(kinds.values())
    for kind, rules in kinds.items():
        for rule in rules:
            for res in jobs[rule]:
                assert res["slurm_partition"] == "gpuq" and res["slurm_account"] == "lab", rule
                assert int(res["mem_mb"]) == cfg[kind]["mem_mb"], rule
                per_run = cfg[kind]["runtime_minutes"]  # on cuda a cohort trains stacked
                want = per_run
                assert int(res["runtime"]) == want, rule
                assert (res.get("gpu") == "1") == (kind == "train"), rule
    # the partition in config wins over the environment
    cfgfile = tmp_path / "c.yaml"
    cfgfile.write_text(yaml.safe_dump({"slurm": {"partition": "cpuq"}}))
    proc = subprocess.run(SNAKEMAKE + ["--profile", "slurm", "-n", "--configfile", str(cfgfile),
                                       "--config", "tier=smoke", f"results={tmp_path}/results"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env,
                          stdin=subprocess.DEVNULL)
    jobs = {rule: res for rule, res in _job_resources(proc.stdout).items()
            if rule != "all" and rule not in FIGURES + VLM_FIGURES}  # target rules run nothing
    assert {r["slurm_partition"] for rs in jobs.values() for r in rs} == {"cpuq"}
    assert not any("gpu" in r for rs in jobs.values() for r in rs)  # device cpu: no GPU
    sizes = {f"train_stage{c.stage}_{c.name}": len(c.members)
             for c in plan.plan_cohorts(resolved_tier("smoke"))}
    for rule in kinds["train"]:  # on the CPU a cohort's members train one after the other
        assert int(jobs[rule][0]["runtime"]) == cfg["train"]["runtime_minutes"] * sizes[rule]


def test_unknown_figure_lists_the_tiers_figures_and_old_paths_say_where_figures_went(tmp_path):
    proc = snakemake("-n", "results/laptop/figures/fig99.pdf", workdir=tmp_path, check=False)
    assert proc.returncode != 0
    assert "no figure 'fig99' in tier 'laptop'; its figures are: fig2a, fig2b" in proc.stdout + \
        proc.stderr
    proc = snakemake("-n", "results/figures/fig2c.pdf", workdir=tmp_path, check=False)
    assert "results/laptop/figures/fig2c.pdf" in proc.stdout + proc.stderr


def test_malformed_config_file_names_the_file_and_line(tmp_path):
    from mmicl.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("tier: smoke\ndefaults:\n  seeds: [0\n  stage1: {K: 3}\n")
    with pytest.raises(SystemExit, match=rf"{bad}:4:\d+: not valid YAML"):
        main(["check-config", "--config", str(bad)])


def test_tier_chosen_on_the_command_line(tmp_path):
    out = snakemake("-n", "--config", "tier=smoke", workdir=tmp_path).stdout
    assert "results/smoke/stage1/" in out and "results/laptop/" not in out
    assert "results/smoke/figures/fig2c.pdf" in out and "results/smoke/findings.md" in out


@pytest.mark.slow
def test_smoke_tier_builds_every_figure(smoke_build):
    """The whole smoke tier, built once per session (smoke_build.py): every figure, table,
    finding and the report; then targeted rebuilds, a second tier beside it, and cohort jobs
    that rerun keep their up-to-date members and retrain the others to the same weights."""
    work, run = smoke_build.work, smoke_build.run
    tier = resolved_tier("smoke")
    results = work / "results"
    for name in tier["figures"]:  # every figure whose data is here (not Mini-ImageNet)
        for ext in ("pdf", "png"):
            path = results / "smoke" / "figures" / f"{name}.{ext}"
            assert path.stat().st_size > 1000, path
    runs = plan.all_runs(tier)
    models = list((results / "smoke" / "stage1").glob("*/seed=*/model.pt"))
    assert len(models) == sum(s.stage == 1 for s in runs)
    stage2 = list((results / "smoke" / "stage2").glob("*/*/seed=*/model.pt"))
    assert len(stage2) == sum(s.stage == 2 for s in runs)
    for name in TABLES:
        assert (results / "smoke" / "figures" / f"{name}.csv").stat().st_size > 50
    # Section 5 on the tiny random models, when the vlm extra is installed
    for name in VLM_FIGURES if not missing_extra() else ():
        assert (results / "smoke" / "figures" / f"{name}.png").stat().st_size > 1000, name
    if not missing_extra():
        assert "tiny random model" in (results / "smoke" / "figures" / "table3.md").read_text()
    assert "| full model |" in (results / "smoke" / "figures" / "table2.md").read_text()
    assert "PHStrength^(1)_1" in (results / "smoke" / "figures" / "table1.md").read_text()
    # the indicator step ran once per run (in its training job), from the run's snapshots
    assert len(list((results / "smoke" / "stage1").glob("*/seed=*/indicators.parquet"))) == \
        len(models)
    assert len(list((results / "smoke" / "stage2").glob("*/*/seed=*/indicators.parquet"))) == \
        len(stage2)
    regression = pd.read_parquet(results / "smoke" / "tables" / "regression.parquet")
    assert {"pearson", "r2", "importance", "prediction"} <= set(regression.kind)
    findings = pd.read_parquet(results / "smoke" / "findings.parquet")
    assert set(findings.verdict) <= {"pass", "fail", "n/a"} and (findings.tier == "smoke").all()
    assert (findings.verdict != "n/a").sum() >= 20  # smoke has the data for almost every one
    assert "Findings check, tier `smoke`" in (results / "smoke" / "findings.md").read_text()
    # the HTML report: every figure and the findings table
    report = paths.report("results", "smoke")
    run("--report", report)
    html = (work / report).read_text()
    assert "fig6.png" in html and "findings.md" in html
    # every job left its log and benchmark: one per cohort of runs
    cohorts = plan.plan_cohorts(tier)
    assert len(list((results / "smoke" / "benchmarks" / "stage1").rglob("*.tsv"))) == \
        sum(c.stage == 1 for c in cohorts) < len(models)
    assert len(list((results / "smoke" / "benchmarks" / "stage2").rglob("*.tsv"))) == \
        sum(c.stage == 2 for c in cohorts) < len(stage2)
    table = pd.read_parquet(results / "smoke" / "tables" / "fig2c.parquet")
    assert set(table["split"]) == {"train", "Test", "IC", "IC2", "IW"}
    assert table["accuracy"].between(0, 1).all()
    assert {"pe", "K", "B", "eps", "seed", "run"} <= set(table.columns)
    # nothing left to do, and rebuilding one figure by path does not retrain anything
    assert "Nothing to be done" in run("-n").stdout
    (results / "smoke" / "figures" / "fig2c.pdf").unlink()
    rebuilt = run("-n", "fig2c").stdout
    assert "train_stage1" not in rebuilt and "figure_fig2c" in rebuilt
    run("--cores", "1", "fig2c")

    # another tier beside it: its own runs, figures and findings; smoke's are untouched
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in (results / "smoke").rglob("*")
              if p.is_file() and p.suffix in (".pdf", ".png", ".parquet", ".md", ".pt")}
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tiers"]["smoke_b"] = {**cfg["tiers"]["smoke"], "seeds": [1]}
    (work / "two.yaml").write_text(yaml.safe_dump(cfg))
    run("--cores", "2", "fig2d", tier="smoke_b", configfile=work / "two.yaml")
    other = results / "smoke_b" / "figures" / "fig2d.png"
    assert other.exists() and other.read_bytes() != (results / "smoke" / "figures" /
                                                     "fig2d.png").read_bytes()
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in before}
    assert after == before

    # determinism, and a cohort job that runs again keeps its up-to-date members. (1) One
    # Stage-1 member (fig2a) and one Stage-2 member (table2: training, indicators and
    # interventions) lose the files the figure's table reads, and the tables go: each cohort
    # reruns and retrains that member alone, to the same weights, indicators and tables.
    # (Snakemake does not rebuild a missing intermediate file while what it feeds is current.)
    names = ("fig2a", "table2")
    targets = [f"results/smoke/tables/{name}.parquet" for name in names]
    chosen = []
    for name in names:
        runs_of = {s.key for s in plan.figure_runs(tier, name)}
        chosen.append(next(c for c in cohorts
                           if len(c.members) >= 2 and runs_of.issuperset(m.key for m in c.members)))
    dirs = [work / paths.run_dir("results", m) for c in chosen for m in c.members]
    kept = {d: io.load_torch(d / "model.pt") for d in dirs}
    indicators = {d: pd.read_parquet(d / paths.INDICATORS_FILE) for d in dirs}

    def unchanged(d):
        now = io.load_torch(d / "model.pt")
        return now.keys() == kept[d].keys() and all(now[k].equal(v) for k, v in kept[d].items())

    references = {t: pd.read_parquet(work / t) for t in targets}
    for c in chosen:
        lost = work / paths.run_dir("results", c.members[1])
        for name in ("model.pt", "final.parquet", *(paths.ANALYSIS_FILES if c.stage == 2 else ())):
            (lost / name).unlink()
    for t in targets:
        (work / t).unlink()
    run("--cores", "2", *targets)
    for c in chosen:
        log = (work / paths.log("results", "smoke", f"stage{c.stage}", "cohorts", c.name))
        text = log.read_text()
        assert f"cohort of {len(c.members)}: 1 trained, {len(c.members) - 1} already up to date" \
            in text, text
    assert all(unchanged(d) for d in dirs)
    for d in dirs:
        pd.testing.assert_frame_equal(pd.read_parquet(d / paths.INDICATORS_FILE), indicators[d],
                                      check_exact=True, obj=str(d))
    for t in targets:
        pd.testing.assert_frame_equal(pd.read_parquet(work / t), references[t], check_exact=True,
                                      obj=t)
    # (2) Other cohorts (size 1 instead of 4): the cohort jobs fig2a needs whose command changed
    # run again, and train only the members never trained before.
    fig2a_runs = {s.key for s in plan.figure_runs(tier, "fig2a")}
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["tiers"]["smoke"]["cohorts"] = {"size": 1}
    (work / "config2.yaml").write_text(yaml.safe_dump(cfg))
    trained = {m.key for m in plan.all_runs(tier)
               if (work / paths.run_file("results", m, "model.pt")).exists()}
    resized = [c for c in plan.plan_cohorts(plan.tier_config({**cfg, "tier": "smoke"}))
               if fig2a_runs.intersection(m.key for m in c.members)]
    log_dir = results / "smoke" / "logs" / "stage1" / "cohorts"
    shutil.rmtree(log_dir)
    run("--cores", "2", targets[0], configfile=work / "config2.yaml")
    reused = 0
    for c in resized:  # (Snakemake may find some resized cohorts' outputs current: no job, no log)
        log = log_dir / f"{c.name}.log"
        if not log.exists():
            continue
        new = sum(m.key not in trained for m in c.members)
        reused += len(c.members) - new
        assert (f"cohort of {len(c.members)}: {new} trained, {len(c.members) - new} already up "
                f"to date") in log.read_text()
    assert reused > 0
    assert all(unchanged(d) for d in dirs)

    def rows(df):  # the same rows (their order follows the cohorts that wrote them)
        return df.sort_values(["run", "seed", "iteration", "split"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(pd.read_parquet(work / targets[0])),
                                  rows(references[targets[0]]), check_exact=True)


def test_every_stage2_run_reuses_the_stage1_checkpoint_of_its_seed():
    """Each two-stage run reads the checkpoint of its own seed, trained once by the tier;
    early-fusion runs read none."""
    tier = resolved_tier("laptop")
    keys = {s.key for s in plan.all_runs(tier)}
    for spec in plan.all_runs(tier):
        parent = plan.parent(tier, spec)
        if spec.stage == 2 and not spec.early_fusion:
            assert parent.key in keys and parent.seed == spec.seed
        else:
            assert parent is None
