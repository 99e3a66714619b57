"""Section 5 in the workflow: when fig7 / table3 / fig8 are planned (smoke: the tiny chain; other
tiers: only with both checkpoints, the data and the extra), the one skip line otherwise, the
`vlm` config section's validation, and the CLI commands the rules call."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmicl.vlm import INSTALL_HINT
from mmicl.vlm import plan as vlm_plan_module
from mmicl.vlm.plan import VLM_FIGURES, skip_line, vlm_plan

ROOT = Path(__file__).resolve().parents[2]
SKIP = "mmicl vlm: Section-5 figures (fig7, table3, fig8) skipped:"


def snakemake(workdir, *args, config=None):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    if config:
        cfg["vlm"] = {**cfg.get("vlm", {}), **config}
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in os.environ.items() if k != "VL_ICL_DATA_ROOT"}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"),
           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300,
                          env=env, stdin=subprocess.DEVNULL)


def test_without_paths_one_line_says_why_and_all_leaves_the_figures_out(tmp_path):
    proc = snakemake(tmp_path, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mmicl vlm:")]
    assert len(lines) == 1 and lines[0].startswith(SKIP), proc.stderr[-2000:]
    if not vlm_plan_module.missing_extra():
        assert "vlm.mllm_path is not set" in lines[0] and "VL_ICL_DATA_ROOT" in lines[0]
    assert "figures/fig7.pdf" not in proc.stdout and "vlm_heads" not in proc.stdout
    # asking for a Section-5 figure stops with the same reason
    proc = snakemake(tmp_path, "-n", "fig7")
    assert proc.returncode != 0 and SKIP in proc.stdout + proc.stderr


def test_smoke_tier_plans_the_tiny_chain(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    proc = snakemake(tmp_path, "-n", "--config", "tier=smoke")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mmicl vlm:" not in proc.stderr
    for name in VLM_FIGURES:
        assert f"results/smoke/figures/{name}.pdf" in proc.stdout
    assert "results/smoke/figures/table3.md" in proc.stdout
    for rule in ("vlm_setup", "vlm_heads", "vlm_compare", "vlm_knockout", "vlm_finetune",
                 "vlm_figure_fig8"):
        assert f"rule {rule}:" in proc.stdout, rule


def test_configured_checkpoints_and_data_plan_the_figures(tmp_path, tiny_pair, data_root):
    """A user's tier with vlm paths: `snakemake fig7` resolves to the head-scoring jobs on
    those checkpoints, with no setup job."""
    mllm, llm = tiny_pair
    proc = snakemake(tmp_path, "-n", "-p", "fig7", "table3", "fig8",
                     config={"mllm_path": str(mllm), "llm_path": str(llm),
                             "data_root": str(data_root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "results/laptop/figures/fig7.pdf" in proc.stdout
    assert "rule vlm_heads:" in proc.stdout and "vlm_setup" not in proc.stdout
    assert str(mllm) in proc.stdout and str(data_root) in proc.stdout


def _checkpoint(path, weights=True):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    if weights:
        (path / "model.safetensors").write_bytes(b"")
    return str(path)


def test_plan_names_each_missing_input(tmp_path, monkeypatch):
    monkeypatch.setattr(vlm_plan_module, "missing_extra", lambda: [])
    monkeypatch.delenv("VL_ICL_DATA_ROOT", raising=False)
    good, bare = _checkpoint(tmp_path / "good"), _checkpoint(tmp_path / "bare", weights=False)
    (tmp_path / "data" / "open_mi").mkdir(parents=True)
    cfg = {"vlm": {"mllm_path": good, "llm_path": bare, "data_root": str(tmp_path)}}
    plan = vlm_plan(cfg, "laptop", "results")
    assert not plan["enabled"]
    assert f"vlm.llm_path={bare} holds no weights" in plan["reason"]
    assert f"the data root {tmp_path} holds no open_mi/ folder" in plan["reason"]
    assert f"vlm.mllm_path={tmp_path / 'none'} holds no config.json" in vlm_plan(
        {"vlm": {"mllm_path": str(tmp_path / "none")}}, "laptop", "results")["reason"]
    assert skip_line(plan).startswith(SKIP) and "docs/vlm.md" in skip_line(plan)
    # the data root from the environment; then everything is there
    monkeypatch.setenv("VL_ICL_DATA_ROOT", str(tmp_path / "data"))
    plan = vlm_plan({"vlm": {"mllm_path": good, "llm_path": good}}, "laptop", "results")
    assert plan["enabled"] and plan["data_root"] == str(tmp_path / "data")
    assert not plan["tiny"] and plan["settings"]["n_eval"] == 50
    # the smoke tier: the tiny chain with the smoke overrides, whatever the paths say
    plan = vlm_plan({}, "smoke", "results")
    assert plan["enabled"] and plan["tiny"] and plan["settings"]["n_eval"] == 12
    assert plan["mllm"] == "results/smoke/vlm/inputs/models/mllm"
    assert plan["settings"]["lora"]["rank"] == 16 and plan["settings"]["lora"]["steps"] == 6


def test_plan_without_the_extra_gives_the_pip_command(monkeypatch):
    monkeypatch.setattr(vlm_plan_module, "missing_extra", lambda: ["peft"])
    plan = vlm_plan({}, "smoke", "results")
    assert not plan["enabled"] and "missing peft" in plan["reason"]
    assert INSTALL_HINT in skip_line(plan)


@pytest.mark.parametrize("edit, message", [
    ({"lora": {"rank": 0}}, "vlm.lora.rank"),
    ({"device": "tpu"}, "vlm.device"),
    ({"n_shots": 2}, "n_shots"),
])
def test_bad_vlm_config_is_rejected(tmp_path, edit, message):
    from mmicl.cli import main

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["vlm"] = {**cfg["vlm"], **edit}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit, match=message.replace(".", r"\.")):
        main(["check-config", "--config", str(bad)])
