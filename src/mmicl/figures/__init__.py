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


def figure_module(name: str):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of: {', '.join(FIGURES)}")
    return importlib.import_module(f"mmicl.figures.{name}")
