"""Fig. 4d: early fusion (one model trained from scratch on triplets) against the two-stage
curriculum, over M2 data complexity — the paper finds the asymmetry reverses."""

from mmicl.figures.common import grouped_lines_figure


def _label(value) -> str:
    return "early fusion" if value in (True, "True", "true") else "two-stage"


def make(df, sweep, defaults):
    return grouped_lines_figure(df, sweep, defaults, label_fmt=_label,
                                title="Fig. 4d: early fusion vs two-stage training")
