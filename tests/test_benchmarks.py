"""The benchmark suite runs (quick mode, tiny repeat counts) and writes every measurement.
Speeds are machine-dependent: nothing here asserts how fast anything is."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

STAGE1_KEYS = ("params", "tokens_per_step", "flop_per_step", "step_ms", "steps_per_s", "data_ms",
               "data_share", "gflops", "fraction_of_peak_1thread", "counted_flop_per_step",
               "counted_gflops", "counted_fraction_of_peak_1thread", "matmul_ceiling_steps_per_s")
STAGE2_KEYS = STAGE1_KEYS + ("trainable_params", "eval_ms", "indicators_ms", "indicators_loop_ms",
                             "steps_per_s_with_eval_and_indicators",
                             "steps_per_s_with_eval_and_loop_indicators")
INDICATOR_KEYS = ("sequences", "vectorised_ms", "loop_ms", "speedup", "scores_vectorised_ms",
                  "scores_loop_ms")
COHORT_KEYS = ("step_ms", "run_steps_per_s", "gflops", "fraction_of_peak",
               "counted_fraction_of_peak", "speedup_vs_solo_1thread")


def _positive(block: dict, keys, where: str) -> None:
    for key in keys:
        value = block.get(key)
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}.{key}"
        assert value > 0, f"{where}.{key} = {value}"


def test_quick_benchmark_writes_every_measurement(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--repeats", "1", "--steps", "2",
                    "--set-size", "40", "--cohort-sizes", "1,2", "--out", str(out)],
                   cwd=REPO, check=True, capture_output=True, text=True, timeout=300)
    result = json.loads(out.read_text())

    meta = result["meta"]
    assert len(meta["commit"]) == 40 or meta["commit"] == "unknown"
    assert meta["torch"] and meta["threads"] == 1 and meta["host"]["logical_cpus"] > 0
    _positive(result["matmul_peak"], ("gflops_1thread", "gflops_all_threads"), "matmul_peak")
    for name in ("rope_D64", "ape_D63"):
        _positive(result["stage1"][name], STAGE1_KEYS, f"stage1.{name}")
    for kind in ("unimodal", "multimodal"):
        _positive(result["data_generation"][kind], ("ms_per_batch", "sequences_per_s"), kind)
    for name in ("stage1_ape_D63", "stage2"):
        block = result["indicators"][name]
        _positive(block, INDICATOR_KEYS, f"indicators.{name}")
        assert block["max_abs_diff"] < 1e-6 and block["cla_equal"]  # same numbers as the loop
    _positive(result["stage2"], STAGE2_KEYS, "stage2")
    for label in ("1thread", "all_threads"):
        block = result["cohort"]["thread_counts"][label]
        _positive(block, ("threads", "peak_gflops"), label)
        for name in ("rope_D64", "ape_D63"):
            assert set(block["shapes"][name]) == {"1", "2"}
            for size, row in block["shapes"][name].items():
                _positive(row, COHORT_KEYS, f"cohort.{label}.{name}.{size}")
    for name in ("rope_D64", "ape_D63", "stage2", "stage2_cadence"):
        _positive(result["targets"][name], ("ours_steps_per_s", "vs_issue_anchor"), name)
    # the counted matmul FLOPs see the cheaper last layer and the frozen Stage-2 decoder
    for name in ("rope_D64", "ape_D63"):
        assert result["stage1"][name]["counted_flop_per_step"] < result["stage1"][name]["flop_per_step"]
    assert result["stage2"]["counted_flop_per_step"] < 0.6 * result["stage2"]["flop_per_step"]


def test_counted_flops_match_a_hand_count():
    # Width 64, one head, 2 layers, T = 17, batch 128: layer 1 runs 6 projections on 2176 tokens
    # (q, k, v, w1, w2, w3), layer 2 runs k and v on all tokens and q, w1, w2, w3 on the last
    # position; each costs 2*rows*64*64 forward and twice that backward (input and weight
    # gradients), except that no input gradient flows into the first layer's inputs.
    import torch

    from benchmarks.run import counted_flop_per_step
    from mmicl.data.sequences import SequenceSpec, generate_sequences
    from mmicl.data.worlds import make_world
    from mmicl.models.decoder import Decoder, DecoderConfig

    torch.manual_seed(0)
    model = Decoder(DecoderConfig(content_dim=64, n_labels=32, pe="rope"))
    world = make_world(0, 128, 32, 64)
    batch = generate_sequences(world, SequenceSpec(N=8), 128, torch.Generator().manual_seed(0))
    counted = counted_flop_per_step(model, batch)
    rows_full, rows_last, d = 128 * 17, 128, 64
    proj = lambda rows: 2 * rows * d * d  # noqa: E731
    forward = 6 * proj(rows_full) + 2 * proj(rows_full) + 4 * proj(rows_last)
    backward = 2 * forward - 3 * proj(rows_full)  # no input gradient for layer 1's q, k, v
    attention = 2 * (2 * 128 * 17 * 17 * d) + 2 * (2 * 128 * 17 * d)  # scores, mix: layer 1, 2
    readout = 2 * rows_last * d * 32
    expected = forward + backward + 3 * attention + 3 * readout
    assert abs(counted - expected) / expected < 1e-3, (counted, expected)


def test_targets_against_issue_and_same_host_anchors():
    from benchmarks.run import targets

    cohort_rows = {"1": {"fraction_of_peak": 0.5, "counted_fraction_of_peak": 0.3},
                   "4": {"fraction_of_peak": 0.8, "counted_fraction_of_peak": 0.5}}
    result = {"stage1": {"rope_D64": {"steps_per_s": 74.0}, "ape_D63": {"steps_per_s": 33.0}},
              "stage2": {"steps_per_s": 44.0, "steps_per_s_with_eval_and_indicators": 30.0},
              "cohort": {"thread_counts": {"1thread": {"shapes": {"rope_D64": cohort_rows}}}}}
    authors = {"authors": {"rope_D64": {"steps_per_s": 37.0}, "ape_D63": {"steps_per_s": 20.0},
                           "stage2": {"steps_per_s": 11.0}}, "meta": {}}
    t = targets(result, authors)
    assert t["rope_D64"]["vs_issue_anchor"] == 2.0 and not t["rope_D64"]["met_vs_issue_anchor"]
    assert t["rope_D64"]["vs_authors_same_host"] == 2.0
    assert t["ape_D63"]["vs_issue_anchor"] == 1.5 and t["ape_D63"]["met_vs_issue_anchor"]
    assert t["ape_D63"]["vs_authors_same_host"] == 1.65 and t["ape_D63"]["met_vs_authors_same_host"]
    assert t["stage2"]["vs_authors_same_host"] == 4.0 and "target" not in t["stage2"]
    assert t["stage2_cadence"]["vs_issue_anchor"] == 2.0
    assert "vs_authors_same_host" not in t["stage2_cadence"]  # the authors' file has no cadence
    assert not t["stage2_cadence"]["met_vs_issue_anchor"]
    best = t["cohort"]["1thread.rope_D64"]
    assert best["best_fraction_of_peak"] == 0.8 and best["met"]
    assert targets(result)["rope_D64"].keys().isdisjoint({"vs_authors_same_host"})


def test_bad_authors_file_is_named(tmp_path):
    bad = tmp_path / "authors.json"
    bad.write_text('{"meta": {}}')
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--authors", str(bad)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and str(bad) in proc.stderr


def test_rule_times_sums_the_benchmark_files_per_kind(tmp_path):
    from benchmarks.rule_times import summarise, table

    head = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = {"stage1/cohorts/a.tsv": (10.5, 9.0, 700), "stage1/cohorts/b.tsv": (4.5, 3.0, 800),
             "worlds/w.tsv": (2.0, 1.5, "-")}
    for name, (s, cpu, rss) in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(head + f"{s}\t0:00:{s}\t{rss}\t1\t1\t1\t0\t0\t50\t{cpu}\n")
    rows = summarise(tmp_path)
    assert rows["stage1"] == {"jobs": 2, "wall_s": 15.0, "cpu_s": 12.0, "max_rss_mb": 800.0}
    assert rows["worlds"] == {"jobs": 1, "wall_s": 2.0, "cpu_s": 1.5, "max_rss_mb": 0.0}
    assert "| total | 3, 17, 14 |" in table([str(tmp_path)])
    with pytest.raises(SystemExit, match="no such folder"):
        summarise(tmp_path / "missing")


def test_rescore_reproduces_the_built_findings_and_reads_runs_at_an_earlier_step(smoke_build,
                                                                                  tmp_path):
    """benchmarks/rescore.py: with no step mapped it must give the findings the workflow built
    (the same tables, context and settings); with stage2:20=10 every Stage-2 row holds the
    run's own evaluation at step 10 (smoke: 20 Stage-2 steps, evaluated every 10)."""
    import pandas as pd

    from benchmarks.rescore import main, parse_map

    results = smoke_build.work / "results" / "smoke"
    config = str(smoke_build.repo / "config.yaml")
    main([str(results), "--config", config, "--out", str(tmp_path / "same")])
    built = pd.read_parquet(results / "findings.parquet").set_index("id")
    same = pd.read_parquet(tmp_path / "same" / "findings.parquet").set_index("id")
    pd.testing.assert_series_equal(same.verdict, built.verdict)
    pd.testing.assert_series_equal(same.ours, built.ours)

    main([str(results), "--config", config, "--out", str(tmp_path / "short"),
          "--map", "stage2:20=10"])
    table = pd.read_parquet(tmp_path / "short" / "tables" / "fig4a.parquet")
    assert set(table.iteration) == {10}  # the mapped runs' train-accuracy rows are dropped
    assert set(table.split) == {"Test", "IC", "IC2", "IW"}
    row = table[table.split == "IC"].iloc[0]
    curve = pd.read_parquet(results / "stage2" / row.stage1_run / row.run / f"seed={row.seed}"
                            / "curve.parquet")
    at10 = curve[(curve.iteration == 10) & (curve.split == "IC")]
    assert row.accuracy == at10.accuracy.iloc[0]
    assert len(curve.iteration.unique()) > 1 and curve.iteration.max() == 20
    unchanged = pd.read_parquet(tmp_path / "short" / "tables" / "fig2a.parquet")
    assert set(unchanged.iteration) == {20}  # Stage 1 not mapped

    with pytest.raises(SystemExit, match="no evaluation or snapshot at step 7"):
        main([str(results), "--config", config, "--out", str(tmp_path / "bad"),
              "--map", "stage2:20=7"])
    with pytest.raises(SystemExit, match="KIND must be one of"):
        parse_map("stage3:20=10")
    with pytest.raises(SystemExit, match="TO must be between"):
        parse_map("stage2:20=30")
