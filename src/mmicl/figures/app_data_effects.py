"""Appendix: Chan/Reddy data effects (K, B, ε, α) in the modern decoder, IC and IW accuracy."""

from mmicl.figures.common import sweep_lines_figure


def make(df, sweep, defaults):
    return sweep_lines_figure(df, sweep, defaults, hue="variant",
                              title="Data distributional properties and ICL vs IWL")
