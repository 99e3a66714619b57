"""The Section-5 findings rows (Fig. 7, Table 3, Fig. 8): computed from the pipeline's tables,
n/a with the reason when the run used a tiny random model or did not run."""

import pandas as pd
import pytest

from mmicl.analysis.findings import TINY_REASON, Settings, evaluate_findings

VLM_IDS = ["vlm_ph_overlap", "vlm_knockout_ph", "vlm_knockout_ih", "vlm_knockout_both",
           "vlm_knockout_vs_random", "vlm_lora_ih_rises", "vlm_lora_ph_flat", "vlm_lora_cla"]
CONTEXT = {"figures": {}, "defaults": {}}


def tables(tiny=False):
    overlap = pd.DataFrame({"kind": ["ph", "ph", "ih"], "k": [5, 10, 10],
                            "a_top_in_b": [3, 4, 1]})
    knockout = pd.DataFrame({"condition": ["baseline", "ph", "ih", "both", "random"],
                             "accuracy": [0.74, 0.65, 0.58, 0.56, 0.73], "tiny": tiny})
    lora = pd.DataFrame({"step": [50, 0, 25], "eval_accuracy": [0.8, 0.5, 0.7],
                         "eval_cla": [1.0, 1.0, 0.95], "avg_ph_strength": [0.41, 0.40, 0.40],
                         "avg_ih_strength": [0.30, 0.10, 0.2], "tiny": tiny})
    return {"vlm_overlap": overlap, "vlm_knockout": knockout, "vlm_lora": lora}


def rows(t):
    out = evaluate_findings(t, CONTEXT, Settings(), "laptop").set_index("id")
    return out.loc[VLM_IDS]


def test_paper_like_tables_pass_with_the_values_computed():
    got = rows(tables())
    assert (got.verdict == "pass").all(), got[["ours", "verdict", "note"]]
    assert got.ours["vlm_ph_overlap"] == 4
    assert got.ours["vlm_knockout_ph"] == pytest.approx(0.09)
    assert got.ours["vlm_knockout_both"] == pytest.approx(0.18)
    assert got.ours["vlm_knockout_vs_random"] == pytest.approx(0.17)
    assert got.ours["vlm_lora_ih_rises"] == pytest.approx(0.20)  # sorted by step: 0.1 -> 0.3
    assert got.ours["vlm_lora_ph_flat"] == pytest.approx(0.025)
    assert got.ours["vlm_lora_cla"] == pytest.approx(0.95)
    assert set(got.source) == {"fig7", "table3", "fig8"}


def test_opposite_results_fail():
    t = tables()
    t["vlm_knockout"]["accuracy"] = [0.5, 0.6, 0.6, 0.6, 0.5]
    t["vlm_lora"]["avg_ph_strength"] = [0.8, 0.4, 0.6]
    got = rows(t)
    assert (got.verdict[["vlm_knockout_ph", "vlm_knockout_both", "vlm_knockout_vs_random",
                         "vlm_lora_ph_flat"]] == "fail").all()


def test_tiny_model_and_missing_tables_are_na_with_the_reason():
    got = rows(tables(tiny=True))
    assert (got.verdict == "n/a").all() and (got.note == TINY_REASON).all()
    got = rows({})
    assert (got.verdict == "n/a").all()
    assert got.note["vlm_knockout_ph"] == "table vlm_knockout was not produced"
