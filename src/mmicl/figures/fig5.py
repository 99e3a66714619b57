"""Fig. 5: decoder scaling in the multimodal stage — deeper or wider Stage-1 decoders reach a
given ICL accuracy with fewer M2 classes."""

from mmicl.figures.common import grouped_lines_figure


def make(df, sweep, defaults):
    return grouped_lines_figure(df, sweep, defaults,
                                title="Fig. 5: Stage-2 accuracy vs K2 for larger decoders")
