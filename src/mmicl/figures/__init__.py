"""One module per figure, each with make(df, sweep, defaults) -> matplotlib Figure.

SOURCES says which per-run table a figure reads (kept here so the workflow can plan jobs without
importing matplotlib).
"""

import importlib

FIGURES = (
    "fig2a", "fig2b", "fig2c", "fig2d",
    "app_data_effects", "app_pe_variants", "app_rope_standard",
)
SOURCES = {name: "final" for name in FIGURES} | {"fig2d": "attention"}
# Which training stage's runs a figure reads.
FIGURE_STAGE = {name: 1 for name in FIGURES}


def figure_module(name: str):
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of: {', '.join(FIGURES)}")
    return importlib.import_module(f"mmicl.figures.{name}")
