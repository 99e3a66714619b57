"""Fig. 4c: M1 Zipf exponent α1 against M2 Zipf exponent α2."""

from mmicl.figures.common import pair_heatmap_figure


def make(df, sweep, defaults):
    return pair_heatmap_figure(df, sweep, defaults, title="Fig. 4c: α1 × α2")
