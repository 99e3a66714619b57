"""One module per figure, each with make(df, sweep, defaults) -> matplotlib Figure.

SOURCES says which per-run table a figure reads (kept here so the workflow can plan jobs without
importing matplotlib).
"""

import importlib

STAGE1_FIGURES = (
    "fig2a", "fig2b", "fig2c", "fig2d",
    "app_data_effects", "app_pe_variants", "app_rope_standard",
)
STAGE2_FIGURES = (
    "fig4a", "fig4b", "fig4c", "fig4d", "fig5", "table2", "app_alignment", "app_projector",
    "app_joint_label",
)
# M2 encoders and real images (App. E1, I1, I2; docs/images.md)
IMAGE_FIGURES = ("app_encoders", "app_omniglot", "app_miniimagenet")
STAGE2_FIGURES += IMAGE_FIGURES
# Circuit analysis: fig6 reads the indicator tables of the default Stage-1 and Stage-2 runs;
# table1 and app_regression read the regression table built from every run's indicators.
ANALYSIS_FIGURES = ("fig6", "table1", "app_regression")
REGRESSION_FIGURES = ("table1", "app_regression")
FIGURES = STAGE1_FIGURES + STAGE2_FIGURES + ANALYSIS_FIGURES
# Tables are written as CSV and Markdown too (their module has table() and markdown()).
TABLES = ("table2", "table1")
SOURCES = {name: "final" for name in FIGURES} | {
    "fig2d": "attention", "table2": "interventions", "app_alignment": "alignment",
    "fig6": "indicators", "table1": "regression", "app_regression": "regression",
}
# Which training stage's runs a figure reads (0: both, through the analysis steps).
FIGURE_STAGE = ({name: 1 for name in STAGE1_FIGURES} | {name: 2 for name in STAGE2_FIGURES}
                | {name: 0 for name in ANALYSIS_FIGURES})
# Section 5 on a real MLLM (Qwen2.5-VL on VL-ICL Open-MI; workflow/rules/vlm.smk): not part of
# FIGURES (no tier sweep, no runs); built when config `vlm` names the checkpoints and data, or on
# tiny random models in the smoke tier. VLM_SOURCES: the Section-5 tables each one reads.
VLM_FIGURES = ("fig7", "table3", "fig8")
VLM_TABLES = ("table3",)
VLM_SOURCES = {"fig7": ("heads_mllm", "heads_llm"), "table3": ("knockout",), "fig8": ("lora",)}
# The Section-5 tables the findings check reads, by file under the tier's VLM folder (the
# workflow's vlm_common.smk and benchmarks/rescore.py both read these).
VLM_FINDINGS_FILES = {"vlm_overlap": "overlap.parquet", "vlm_knockout": "knockout.parquet",
                      "vlm_lora": "lora/lora.parquet"}


def figure_defaults(tier: dict, figure: str) -> dict:
    """The defaults a figure's rows are selected against (Stage-2 figures see the Stage-1
    defaults as stage1.<key>)."""
    if FIGURE_STAGE[figure] == 2:
        return {**tier["stage2"], **{f"stage1.{k}": v for k, v in tier["stage1"].items()}}
    return dict(tier["stage1"])


def findings_context(tier: dict) -> dict:
    """What the findings check reads besides the tables: every figure's sweep and defaults."""
    figures = tier["figures"]
    return {"figures": figures,
            "defaults": {name: figure_defaults(tier, name) for name in figures}}


# The tables the findings check reads (mmicl.analysis.findings.SOURCES; kept here so the
# workflow plans jobs without importing matplotlib; a test keeps the two equal).
FINDINGS_SOURCES = ("app_data_effects", "fig2a", "fig2b", "fig2c", "app_rope_standard", "table2",
                    "fig4a", "fig4b", "fig5", "fig4d", "fig6", "table1",
                    "fig7", "table3", "fig8")
FINDINGS_SOURCES += ("app_omniglot", "app_miniimagenet")

# The finding each figure tests (report captions; verdicts in results/findings.md).
CAPTIONS = {
    "fig2a": "Fig. 2a - depth scaling: deeper decoders shift unimodal models from ICL towards "
             "IWL (IC and IW accuracy against K).",
    "fig2b": "Fig. 2b - width scaling: more heads shift unimodal models towards IWL, more "
             "strongly than depth.",
    "fig2c": "Fig. 2c - APE vs RoPE heatmaps over data complexity: RoPE raises the data "
             "complexity ICL needs (the authors' RoPE).",
    "fig2d": "Fig. 2d - layer-1/2 attention maps of the default APE and RoPE models: a "
             "previous-token head in layer 1 and an induction head in layer 2.",
    "app_data_effects": "Appendix - Chan et al. data effects in the modern decoder: ICL rises "
                        "and IWL falls with K, B and eps; a Zipfian alpha helps both.",
    "app_pe_variants": "Appendix - ALiBi and hybrid position encodings against APE and RoPE.",
    "app_rope_standard": "Robustness (ours) - the APE-vs-RoPE comparison with a correct "
                         "rotary embedding.",
    "fig4a": "Fig. 4a - modality asymmetry: after high-K1 pretraining a simple M2 suffices "
             "(K2 x B); burstiness lifts ICL and lowers IWL.",
    "fig4b": "Fig. 4b - M1 vs M2 noise: the paper finds eps2 gains far exceed eps1 gains.",
    "fig4c": "Fig. 4c - M1 vs M2 Zipf exponents.",
    "fig4d": "Fig. 4d - early fusion (no Stage 1) reverses the asymmetry: ICL needs far more "
             "M2 data.",
    "fig5": "Fig. 5 - deeper or wider Stage-1 decoders need less M2 data in Stage 2.",
    "table2": "Table 2 - knocking out the previous-token or the induction head breaks ICL; "
              "zeroing M1 hurts more than zeroing M2.",
    "app_alignment": "Appendix - M2 dimension against M1/M2 alignment (CKA, L2) and accuracy.",
    "app_projector": "Appendix - projector capacity (small vs large).",
    "app_joint_label": "Appendix J - joint labels that need both modalities.",
    "fig6": "Fig. 6 - circuit indicators through training: in Stage 2 PHStrength stays flat "
            "while IndStrength rises with accuracy and CLA stays high.",
    "table1": "Table 1 - Pearson correlation of the indicators with ICL accuracy per family, "
              "beside the paper's, and the random-forest R^2 (paper >= 0.91).",
    "app_regression": "Random forest on the indicators: out-of-fold predictions against "
                      "measured ICL accuracy, and feature importances.",
    "fig7": "Fig. 7 - previous-token and induction head scores of Qwen2.5-VL and its text "
            "backbone: the top heads overlap (paper: 4 of the MLLM's top-5 PH in the LLM's "
            "top-10).",
    "table3": "Table 3 - knocking out the top-5 PH, IH or both heads of Qwen2.5-VL lowers "
              "Open-MI 2-shot accuracy (paper: 0.74 to 0.65, 0.58, 0.56).",
    "fig8": "Fig. 8 - LoRA fine-tuning of Qwen2.5-VL: IH strength rises with accuracy, PH "
            "strength stays flat, CLA stays at 1.",
}

CAPTIONS |= {
    "app_encoders": "Appendix E1 - M2 encoders (MLP, 1-D CNN, transformer), pretrained or random, "
                    "frozen or trainable, against the projector alone.",
    "app_omniglot": "Appendix I1 - K2 x B with glyph images (Omniglot layout) through a "
                    "pretrained ViT, beside the Gaussian Stage 2.",
    "app_miniimagenet": "Appendix I2 - K2 x B with Mini-ImageNet through a pretrained ViT "
                        "(K2 <= 64), beside the Gaussian Stage 2.",
}


def figure_module(name: str):
    if name not in FIGURES + VLM_FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of: "
                         f"{', '.join(FIGURES + VLM_FIGURES)}")
    return importlib.import_module(f"mmicl.figures.{name}")
