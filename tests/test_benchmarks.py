"""The benchmark suite runs (quick mode, tiny repeat counts) and writes every measurement.
Speeds are machine-dependent: nothing here asserts how fast anything is."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

STAGE1_KEYS = ("params", "tokens_per_step", "flop_per_step", "step_ms", "steps_per_s", "data_ms",
               "data_share", "gflops", "fraction_of_peak_1thread")
STAGE2_KEYS = STAGE1_KEYS + ("trainable_params", "eval_ms", "indicators_ms", "indicators_loop_ms",
                             "steps_per_s_with_eval_and_indicators",
                             "steps_per_s_with_eval_and_loop_indicators")
INDICATOR_KEYS = ("sequences", "vectorised_ms", "loop_ms", "speedup", "scores_vectorised_ms",
                  "scores_loop_ms")
COHORT_KEYS = ("step_ms", "run_steps_per_s", "gflops", "fraction_of_peak",
               "speedup_vs_solo_1thread")


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
