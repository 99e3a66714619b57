"""Appendix: joint labels (the label of a pair is g1(k1)·G2 + g2(k2), so both modalities are
needed) — IC and IW accuracy against K2 for several M2 group counts G2."""

from mmicl.figures.common import grouped_lines_figure


def make(df, sweep, defaults):
    return grouped_lines_figure(df, sweep, defaults, title="Joint-label setting")
