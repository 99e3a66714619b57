"""Appendix: projector capacity — the two-layer projector against a three-layer one."""

from mmicl.figures.common import grouped_lines_figure


def make(df, sweep, defaults):
    return grouped_lines_figure(df, sweep, defaults, title="Projector capacity: small vs large")
