"""Fig. 2a: deeper decoders bias unimodal training toward in-weights learning."""

from mmicl.figures.common import scaling_figure


def make(df, sweep, defaults):
    return scaling_figure(df, sweep, defaults, hue="n_layers",
                          title="Fig. 2a: depth scaling vs data complexity")
