"""Fig. 2c: APE vs RoPE — ICL accuracy over data complexity (K × B and K × ε)."""

from mmicl.figures.common import heatmap_figure


def make(df, sweep, defaults):
    return heatmap_figure(df, sweep, defaults, title="Fig. 2c: APE vs RoPE, ICL accuracy")
