"""Does the reproduction reproduce? Every finding of the paper, tested on the produced tables.

Each finding is a statistic computed per seed from a collected table (never typed in), then
mean ± std over seeds, and a test with an explicit margin:

* ``increase`` / ``decrease``: a difference of accuracies (e.g. IC at the largest K minus IC at
  the smallest) must exceed +margin / fall below -margin;
* ``at_least`` / ``at_most``: a level against a threshold;
* ``all``: a count that must equal its maximum (e.g. every correlation sign agrees).

A finding whose data are not in the tier (a grid without the needed points) gets verdict "n/a"
with the reason. The margins are config knobs (`findings` section).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mmicl.analysis import finding_notes
from mmicl.analysis.finding_stats import (  # noqa: F401 (TINY_REASON: the findings' n/a text)
    TINY_REASON,
    Finding,
    Missing,
    Settings,
    contrast,
    difference,
    dynamics_change,
    flat_ratio,
    image_ic_at_small_K2,
    intervention_gap,
    intervention_level,
    readings_note,
    regression_value,
    rope_standard_gap,
    sign_agreement,
    vlm_knockout_drop,
    vlm_lora,
    vlm_overlap,
)

# ------------------------------------------------------------------------------------------
# the findings


def _data_effect(key, split, direction, paper_value):
    test = "increase" if direction > 0 else "decrease"
    word = "rises" if direction > 0 else "falls"
    return Finding(
        id=f"stage1_{key}_{split}", source="app_data_effects",
        statement=f"{'ICL' if split == 'IC' else 'IWL'} {word} with {key} (Chan et al. effects "
                  "reproduced in the modern decoder)",
        paper_value=paper_value,
        statistic=f"{split} accuracy at the largest minus the smallest {key}",
        test=test,
        compute=lambda t, c, s: contrast(t, c, "app_data_effects", key, split))


FINDINGS: tuple[Finding, ...] = (
    _data_effect("K", "IC", +1, "qualitative (App.)"),
    _data_effect("K", "IW", -1, "qualitative (App.)"),
    _data_effect("B", "IC", +1, "qualitative (App.)"),
    _data_effect("B", "IW", -1, "qualitative (App.)"),
    _data_effect("eps", "IC", +1, "qualitative (App.)"),
    _data_effect("eps", "IW", -1, "qualitative (App.)"),
    Finding("stage1_depth_IC", "fig2a", "deeper decoders shift unimodal models towards IWL",
            "qualitative (Fig. 2a)",
            "IC accuracy of the deepest minus the 2-layer decoder, mean over K", "decrease",
            lambda t, c, s: contrast(t, c, "fig2a", "n_layers", "IC")),
    Finding("stage1_width_IC", "fig2b", "wider (more heads) decoders shift towards IWL, more "
            "strongly than depth", "qualitative (Fig. 2b)",
            "IC accuracy of the most heads minus 1 head, mean over K", "decrease",
            lambda t, c, s: contrast(t, c, "fig2b", "n_heads", "IC")),
    Finding("stage1_rope_IC", "fig2c", "RoPE raises the data complexity ICL needs "
            "(authors' RoPE)", "qualitative (Fig. 2c)",
            "IC accuracy of RoPE minus APE, mean over the K x B grid", "decrease",
            lambda t, c, s: contrast(t, c, "fig2c", "pe", "IC", hi="rope", lo="ape")),
    Finding("stage1_rope_standard_IC", "app_rope_standard", "the RoPE effect survives a "
            "correct (standard) rotary embedding (our robustness check)", "not in the paper",
            "IC accuracy of standard RoPE minus APE, mean over the K x B grid", "decrease",
            lambda t, c, s: rope_standard_gap(t, c)),
    Finding("stage2_K2_suffices", "table2", "after high-K1 pretraining a simple M2 (K2 = 256) "
            "suffices for ICL", "≈ 0.95-0.97 IC (Fig. 4a, Table 2)",
            "IC accuracy of the default Stage-2 model", "at_least",
            lambda t, c, s: intervention_level(t, c, "full", s)),
    Finding("stage2_B_IC", "fig4a", "burstiness lifts Stage-2 ICL", "qualitative (Fig. 4a)",
            "IC accuracy at the largest minus the smallest B, mean over K2", "increase",
            lambda t, c, s: contrast(t, c, "fig4a", "B", "IC")),
    Finding("stage2_B_IW", "fig4a", "burstiness lowers Stage-2 IWL", "qualitative (Fig. 4a)",
            "IW accuracy at the largest minus the smallest B, mean over K2", "decrease",
            lambda t, c, s: contrast(t, c, "fig4a", "B", "IW")),
    Finding("stage2_eps2_vs_eps1", "fig4b", "M2 noise (eps2) gains far exceed M1 noise gains",
            "eps2 gains ≫ eps1 gains (Fig. 4b)",
            "IC gain from eps2 (largest - smallest) minus the gain from eps1", "increase",
            lambda t, c, s: difference(contrast(t, c, "fig4b", "eps2", "IC"),
                                        contrast(t, c, "fig4b", "eps1", "IC"))),
    Finding("stage2_eps2_gain", "fig4b", "M2 noise (eps2) raises Stage-2 ICL",
            "eps2 gains > 0 (Fig. 4b)", "IC gain from eps2 (largest - smallest)", "increase",
            lambda t, c, s: contrast(t, c, "fig4b", "eps2", "IC")),
    Finding("stage2_depth_less_M2", "fig5", "deeper decoders need less M2 data",
            "qualitative (Fig. 5)",
            "IC accuracy of the deepest minus the 2-layer decoder, mean over K2", "increase",
            lambda t, c, s: contrast(t, c, "fig5", "stage1.n_layers", "IC")),
    Finding("stage2_width_less_M2", "fig5", "wider decoders need less M2 data",
            "qualitative (Fig. 5)",
            "IC accuracy of the most heads minus 1 head, mean over K2", "increase",
            lambda t, c, s: contrast(t, c, "fig5", "stage1.n_heads", "IC")),
    Finding("early_fusion_reverses", "fig4d", "early fusion (no Stage 1) loses the asymmetry: "
            "ICL needs far more M2 data", "qualitative (Fig. 4d)",
            "IC accuracy of early fusion minus two-stage, mean over K2", "decrease",
            lambda t, c, s: contrast(t, c, "fig4d", "early_fusion", "IC", hi=True, lo=False)),
    Finding("knockout_ph", "table2", "knocking out the layer-1 previous-token head breaks ICL",
            "0.970 → 0.199", "IC accuracy, full minus PH knockout", "increase",
            lambda t, c, s: intervention_gap(t, c, "full", "ph_knockout", s),
            lambda t, c, s: readings_note(t, c, "full", "ph_knockout")),
    Finding("knockout_ih_vs_ph", "table2", "the induction-head knockout hurts more than the "
            "previous-token knockout", "0.062 < 0.199",
            "IC accuracy, PH knockout minus IH knockout", "increase",
            lambda t, c, s: intervention_gap(t, c, "ph_knockout", "ih_knockout", s),
            lambda t, c, s: readings_note(t, c, "ph_knockout", "ih_knockout")),
    Finding("zeroing_m1_vs_m2", "table2", "zeroing M1 hurts more than zeroing M2",
            "0.063 (M1 zeroed) < 0.336 (M2 zeroed)",
            "IC accuracy with M2 zeroed minus with M1 zeroed", "increase",
            lambda t, c, s: intervention_gap(t, c, "zero_m2", "zero_m1", s),
            lambda t, c, s: readings_note(t, c, "zero_m2", "zero_m1")),
    Finding("stage2_ph_flat", "fig6", "PHStrength stays flat during Stage 2",
            "flat (Fig. 6)", "|change of PHStrength^(1)_1 in Stage 2| / its range in Stage 1 "
            "(the same decoder)", "at_most", lambda t, c, s: flat_ratio(t)),
    Finding("stage2_ind_rises", "fig6", "IndStrength rises with accuracy during Stage 2",
            "rises (Fig. 6)", "change of IndStrength_2 from first to last snapshot", "increase",
            lambda t, c, s: dynamics_change(t, "multimodal", "induction_strength", 2)),
    *(Finding(f"{family}_correlation_signs", "regression",
              f"the paper's strong {family} correlates are positively correlated with IC",
              ("PH^(1)_1 .72, CLA .65, IndStrength_2 .61, TLA_1 .59" if family == "unimodal"
               else "IndStrength_2 .70, PH^(1)_1 .58, TLA_2 .56"),
              "number of those indicators with Pearson r > 0 (all snapshots)", "all",
              lambda t, c, s, family=family: sign_agreement(t, family))
      for family in ("unimodal", "multimodal")),
    *(Finding(f"{family}_rf_r2", "regression",
              f"a random forest on the indicators predicts {family} ICL accuracy",
              "R² ≥ 0.91", "random-forest R², mean over run-grouped folds", "at_least",
              lambda t, c, s, family=family: regression_value(t, family, "r2"))
      for family in ("unimodal", "multimodal")),
    Finding("vlm_ph_overlap", "fig7", "Qwen2.5-VL's top previous-token heads are its text "
            "backbone's", "4 of the MLLM's top-5 PH heads in the LLM's top-10",
            "MLLM top-5 PH heads among the LLM's top-10", "at_least",
            lambda t, c, s: vlm_overlap(t)),
    *(Finding(f"vlm_knockout_{cond}", "table3", f"knocking out Qwen2.5-VL's top-5 {label} "
              "heads lowers Open-MI accuracy", f"0.74 → {paper}",
              f"accuracy, no knockout minus {label} knocked out", "increase",
              lambda t, c, s, cond=cond: vlm_knockout_drop(t, cond))
      for cond, label, paper in (("ph", "PH", "0.65"), ("ih", "IH", "0.58"),
                                 ("both", "PH + IH", "0.56"))),
    Finding("vlm_knockout_vs_random", "table3", "the top heads matter more than random heads",
            "(our control)", "accuracy, 5 random heads minus top-5 PH + IH knocked out",
            "increase", lambda t, c, s: vlm_knockout_drop(t, "both", "random")),
    Finding("vlm_lora_ih_rises", "fig8", "IndStrength rises during LoRA fine-tuning",
            "rises (Fig. 8)", "mean IH score of the top-5 IH heads, last minus first eval",
            "increase", lambda t, c, s: vlm_lora(t, "avg_ih_strength", "change")),
    Finding("vlm_lora_ph_flat", "fig8", "PHStrength stays flat during LoRA fine-tuning",
            "flat (Fig. 8)", "|change of the top-5 PH heads' mean score| / its first value",
            "at_most", lambda t, c, s: vlm_lora(t, "avg_ph_strength", "relative")),
    Finding("vlm_lora_cla", "fig8", "CLA stays at 1 during LoRA fine-tuning", "1 (Fig. 8)",
            "lowest CLA over the evaluations", "at_least",
            lambda t, c, s: vlm_lora(t, "eval_cla", "min")),
)



# the asymmetry with images through a pretrained ViT (App. I1 glyph / real Omniglot, I2)
FINDINGS += tuple(
    finding for figure, app in (("app_omniglot", "I1"), ("app_miniimagenet", "I2"))
    for finding in (
        Finding(f"{figure}_K2_suffices", figure, "with images through a pretrained ViT, a "
                "small K2 still suffices for ICL after high-K1 pretraining",
                f"qualitative (App. {app})",
                "IC accuracy of the image runs at the smallest K2 and the largest B",
                "at_least", lambda t, c, s, figure=figure: image_ic_at_small_K2(t, c, figure)),
        Finding(f"{figure}_B_IC", figure, "burstiness lifts ICL with image M2 too",
                f"qualitative (App. {app})",
                "IC accuracy of the image runs at the largest minus the smallest B, mean over "
                "K2", "increase", lambda t, c, s, figure=figure: contrast(t, c, figure, "B",
                                                                          "IC"))))


def _verdict(test: str, mean: float, settings: Settings, finding: Finding,
             values: list[float]) -> tuple[str, str]:
    """(verdict, the test as applied, with its threshold)."""
    m = settings.margin
    if test == "increase":
        return ("pass" if mean > m else "fail"), f"mean > +{m:g}"
    if test == "decrease":
        return ("pass" if mean < -m else "fail"), f"mean < -{m:g}"
    if test == "at_least":
        threshold = settings.r2_threshold if finding.id.endswith("_r2") \
            else settings.vlm_min_overlap if finding.id == "vlm_ph_overlap" \
            else settings.suffice_threshold
        return ("pass" if mean >= threshold else "fail"), f"mean >= {threshold:g}"
    if test == "at_most":
        return ("pass" if mean <= settings.flat_ratio else "fail"), \
            f"mean <= {settings.flat_ratio:g}"
    if test == "all":
        total = 4 if finding.id.startswith("unimodal") else 3
        return ("pass" if mean >= total else "fail"), f"all {total} positive"
    raise ValueError(f"unknown test {test!r}")


def evaluate_findings(tables: Mapping[str, pd.DataFrame], context: Mapping,
                      settings: Settings, tier: str) -> pd.DataFrame:
    """One row per finding: id, source, statement, paper, statistic, ours (mean), std, seeds,
    test, verdict (pass | fail | n/a), note, tier. `context` = {"figures": sweeps,
    "defaults": {figure: defaults}} as the figure rules get them."""
    rows = []
    for f in FINDINGS:
        row = {"id": f.id, "source": f.source, "statement": f.statement,
               "paper": f.paper_value, "statistic": f.statistic, "tier": tier}
        try:
            values = f.compute(tables, context, settings)
        except Missing as exc:
            rows.append({**row, "ours": np.nan, "std": np.nan, "seeds": 0, "test": f.test,
                         "verdict": "n/a", "note": str(exc)})
            continue
        mean = float(np.mean(values))
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        verdict, test = _verdict(f.test, mean, settings, f, values)
        note = f.note(tables, context, settings) if f.note else ""
        rows.append({**row, "ours": mean, "std": std, "seeds": len(values), "test": test,
                     "verdict": verdict, "note": note})
    return pd.DataFrame(rows)


def markdown(findings: pd.DataFrame) -> str:
    counts = findings.verdict.value_counts()
    head = (f"Findings check, tier `{findings.tier.iloc[0]}`: {counts.get('pass', 0)} pass, "
            f"{counts.get('fail', 0)} fail, {counts.get('n/a', 0)} n/a.\n\n")
    lines = ["| finding | paper | statistic (per seed) | ours (mean ± std, seeds) | test | "
             "verdict |", "|---|---|---|---|---|---|"]
    for r in findings.itertuples():
        ours = "–" if pd.isna(r.ours) else f"{r.ours:.3f} ± {r.std:.3f} ({r.seeds})"
        verdict = r.verdict if not r.note else f"{r.verdict}: {r.note}"
        lines.append(f"| {r.statement} | {r.paper} | {r.statistic} | {ours} | {r.test} "
                     f"| **{verdict}** |")
    return head + "\n".join(lines) + "\n" + finding_notes.section(findings)


# the tables the findings read (figure names, plus "regression" through table1)
SOURCES = tuple(dict.fromkeys(f.source if f.source != "regression" else "table1"
                              for f in FINDINGS))

