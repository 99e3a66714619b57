"""Fig. 2b: wider decoders (more heads) bias unimodal training toward in-weights learning."""

from mmicl.figures.common import scaling_figure


def make(df, sweep, defaults):
    return scaling_figure(df, sweep, defaults, hue="n_heads",
                          title="Fig. 2b: width (heads) scaling vs data complexity")
