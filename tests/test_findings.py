"""The findings check: statistics computed from tables (hand-computed contrasts), verdicts with
margins, n/a when the tier lacks data, and the Markdown table."""

import pandas as pd
import pytest

from mmicl.analysis import finding_notes
from mmicl.analysis.findings import (
    FINDINGS,
    Settings,
    contrast,
    evaluate_findings,
    markdown,
)

DEFAULTS = {"K": 512, "B": 4, "eps": 0.1, "alpha": 0.0}
SWEEP = {"grid": [{"K": [128, 512, 2048]}, {"B": [1, 4]}], "fixed": {"K": 512}}
CONTEXT = {"figures": {"app_data_effects": SWEEP}, "defaults": {"app_data_effects": DEFAULTS}}


def data_effects_table():
    """IC = K/4096 + 0.1*seed at B=4; IW = 1 - IC. Seeds 0 and 1."""
    rows = []
    for seed in (0, 1):
        for K in (128, 512, 2048):
            ic = K / 4096 + 0.1 * seed
            rows += [{**DEFAULTS, "K": K, "seed": seed, "split": "IC", "accuracy": ic},
                     {**DEFAULTS, "K": K, "seed": seed, "split": "IW", "accuracy": 1 - ic}]
        for B, ic in ((1, 0.05), (4, 512 / 4096 + 0.1 * seed)):
            rows += [{**DEFAULTS, "B": B, "seed": seed, "split": "IC", "accuracy": ic}]
    return pd.DataFrame(rows)


def test_contrast_by_hand():
    tables = {"app_data_effects": data_effects_table()}
    # IC(K=2048) - IC(K=128) = (2048 - 128) / 4096 for both seeds
    assert contrast(tables, CONTEXT, "app_data_effects", "K", "IC") == pytest.approx(
        [1920 / 4096] * 2)
    assert contrast(tables, CONTEXT, "app_data_effects", "K", "IW") == pytest.approx(
        [-1920 / 4096] * 2)
    # the B grid is read at the fixed K = 512: IC(B=4) - IC(B=1)
    assert contrast(tables, CONTEXT, "app_data_effects", "B", "IC") == pytest.approx(
        [0.125 - 0.05, 0.225 - 0.05])


def test_verdicts_margins_and_missing_data():
    out = evaluate_findings({"app_data_effects": data_effects_table()}, CONTEXT, Settings(),
                            "test").set_index("id")
    assert len(out) == len(FINDINGS) and (out.tier == "test").all()
    k = out.loc["stage1_K_IC"]
    assert k.verdict == "pass" and k.ours == pytest.approx(1920 / 4096) and k.seeds == 2
    assert k["std"] == pytest.approx(0.0) and k.test == "mean > +0.05"
    assert out.loc["stage1_K_IW"].verdict == "pass"
    b = out.loc["stage1_B_IC"]
    assert b.ours == pytest.approx(0.125) and b["std"] == pytest.approx(0.1 * 2 ** 0.5 / 2)
    # a large margin turns the B effect into a failure
    strict = evaluate_findings({"app_data_effects": data_effects_table()}, CONTEXT,
                               Settings(margin=0.2), "test").set_index("id")
    assert strict.loc["stage1_B_IC"].verdict == "fail"
    # a failing finding gets its measured reason, or says it has none; passing ones get none
    notes = {"stage1_B_IC": finding_notes.Explanation("test tier", "Too few heads.",
                                                      "`tier=more`.")}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(finding_notes, "EXPLAINED", notes)
        text = markdown(strict.reset_index())
        assert ("- **ICL rises with B (Chan et al. effects reproduced in the modern decoder)** "
                "(stage1_B_IC; measured on the test tier): Too few heads. *Where it holds:* "
                "`tier=more`.") in text
        mp.setattr(finding_notes, "EXPLAINED", {})
        assert "(stage1_B_IC): no measured explanation yet." in markdown(strict.reset_index())
        assert "Failing findings" not in markdown(out.reset_index())
    # the eps grid is not configured, the other figures are absent
    assert out.loc["stage1_eps_IC"].verdict == "n/a"
    assert "no grid over eps" in out.loc["stage1_eps_IC"].note
    assert out.loc["stage2_K2_suffices"].verdict == "n/a"
    text = markdown(out.reset_index())
    assert out.loc["stage1_B_IW"].verdict == "n/a"  # the table has no IW rows on the B grid
    assert "tier `test`: 3 pass, 0 fail" in text and "**n/a:" in text


def test_regression_findings():
    reg = pd.DataFrame([
        {"family": "unimodal", "data": "all", "kind": "r2", "value": 0.95, "feature": None,
         "paper": 0.91},
        {"family": "multimodal", "data": "all", "kind": "r2", "value": 0.5, "feature": None,
         "paper": 0.91},
        *({"family": "unimodal", "data": "all", "kind": "pearson", "feature": f, "value": v,
           "paper": p} for f, v, p in (("prev_token_1_1", 0.3, 0.72), ("cla", 0.2, 0.65),
                                       ("induction_strength_2", -0.1, 0.61),
                                       ("tla_1", 0.4, 0.59), ("tila_1", -0.5, float("nan")))),
    ])
    out = evaluate_findings({"regression": reg}, {"figures": {}, "defaults": {}}, Settings(),
                            "t").set_index("id")
    assert out.loc["unimodal_rf_r2"].verdict == "pass"
    assert out.loc["multimodal_rf_r2"].verdict == "fail"
    signs = out.loc["unimodal_correlation_signs"]
    assert signs.ours == 3 and signs.verdict == "fail"  # IndStrength_2 has the wrong sign
    assert out.loc["multimodal_correlation_signs"].verdict == "n/a"


def test_workflow_list_of_sources_matches_the_findings():
    from mmicl.analysis.findings import SOURCES
    from mmicl.figures import FINDINGS_SOURCES

    assert FINDINGS_SOURCES == SOURCES


def table2_table():
    """IC accuracy of Table 2's model per (intervention, reading), seeds 0 and 1."""
    values = {("full", "none"): 0.8, ("ph_knockout", "zero"): 0.5, ("ih_knockout", "zero"): 0.2,
              ("ph_knockout", "uniform"): 0.6, ("ih_knockout", "uniform"): 0.7,
              ("zero_m2", "items"): 0.45, ("zero_m1", "items"): 0.9,
              ("zero_m2", "tokens"): 0.45, ("zero_m1", "tokens"): 0.04}
    return pd.DataFrame([{"K2": 256, "seed": seed, "split": "IC", "intervention": i,
                          "reading": r, "accuracy": v + 0.01 * seed}
                         for seed in (0, 1) for (i, r), v in values.items()])


TABLE2_CONTEXT = {"figures": {"table2": {"grid": {"K2": [256]}}},
                  "defaults": {"table2": {"K2": 256}}}


@pytest.mark.parametrize("zeroing, gap, verdict", [("tokens", 0.41, "pass"),
                                                  ("items", -0.45, "fail")])
def test_table2_findings_read_the_chosen_reading_and_name_the_ones_that_hold(zeroing, gap,
                                                                            verdict):
    settings = Settings(zeroing_reading=zeroing, knockout_reading="zero")
    out = evaluate_findings({"table2": table2_table()}, TABLE2_CONTEXT, settings,
                            "t").set_index("id")
    z = out.loc["zeroing_m1_vs_m2"]
    assert z.ours == pytest.approx(gap) and z.verdict == verdict
    assert z.note == "ordering holds under: tokens"  # whatever reading the finding uses
    ko = out.loc["knockout_ih_vs_ph"]
    assert ko.ours == pytest.approx(0.3) and ko.verdict == "pass"
    assert ko.note == "ordering holds under: zero"  # uniform: IH 0.7 > PH 0.6
    assert out.loc["knockout_ph"].note == "ordering holds under: uniform, zero"  # full 0.8
    assert out.loc["stage2_K2_suffices"].ours == pytest.approx(0.805)


def fig6_table(stage2_change):
    """PHStrength^(1)_1 of the unimodal run ranging 0.1 .. 0.5 (range 0.4) and of the
    multimodal run changing by `stage2_change`, two heads (the strongest counts)."""
    rows = []
    for seed in (0, 1):
        for it, v in ((0, 0.1), (10, 0.5), (20, 0.4)):
            rows += [{"family": "unimodal", "seed": seed, "iteration": it, "layer": 1,
                      "head": h, "indicator": "prev_token_1", "value": v - 0.05 * h}
                     for h in (0, 1)]
        for it, v in ((0, 0.4), (10, 0.4 + stage2_change)):
            rows += [{"family": "multimodal", "seed": seed, "iteration": it, "layer": 1,
                      "head": h, "indicator": "prev_token_1", "value": v - 0.05 * h}
                     for h in (0, 1)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("change, ratio, verdict", [(-0.08, 0.2, "pass"), (0.12, 0.3, "fail")])
def test_flat_is_the_stage2_change_over_the_stage1_range(change, ratio, verdict):
    out = evaluate_findings({"fig6": fig6_table(change)}, {"figures": {}, "defaults": {}},
                            Settings(flat_ratio=0.25), "t").set_index("id")
    flat = out.loc["stage2_ph_flat"]
    assert flat.ours == pytest.approx(ratio) and flat.verdict == verdict
    assert flat.test == "mean <= 0.25"


def test_every_explanation_names_a_finding():
    ids = {f.id for f in FINDINGS}
    assert finding_notes.EXPLAINED, "the shipped explanations are empty"
    unknown = set(finding_notes.EXPLAINED) - ids
    assert not unknown, f"explanations for findings that do not exist: {sorted(unknown)}"
    for note in finding_notes.EXPLAINED.values():
        assert note.measured and note.reason and note.holds
