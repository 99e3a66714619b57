"""Appendix: ALiBi and hybrid (APE+RoPE) against APE and RoPE over data complexity."""

from mmicl.figures.common import sweep_lines_figure


def make(df, sweep, defaults):
    return sweep_lines_figure(df, sweep, defaults, hue="variant",
                              title="Position encodings: APE, RoPE, ALiBi, hybrid")
