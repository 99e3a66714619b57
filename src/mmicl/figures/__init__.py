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
FIGURES = STAGE1_FIGURES + STAGE2_FIGURES
# Tables are written as CSV and Markdown too (their module has table() and markdown()).
TABLES = ("table2",)
SOURCES = {name: "final" for name in FIGURES} | {
    "fig2d": "attention", "table2": "interventions", "app_alignment": "alignment",
}
# Which training stage's runs a figure reads.
FIGURE_STAGE = {name: 1 for name in STAGE1_FIGURES} | {name: 2 for name in STAGE2_FIGURES}


def figure_module(name: str):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of: {', '.join(FIGURES)}")
    return importlib.import_module(f"mmicl.figures.{name}")
