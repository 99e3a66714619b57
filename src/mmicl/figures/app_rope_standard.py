"""Appendix: the APE-vs-RoPE comparison again with a correct (standard) RoPE.

The authors' RoPE is not a rotation (protocol §2.3); this robustness panel asks whether the
paper's "RoPE raises the data complexity ICL needs" survives a standard rotary embedding.
"""

from mmicl.figures.common import heatmap_figure


def make(df, sweep, defaults):
    return heatmap_figure(df, sweep, defaults,
                          title="APE vs RoPE (authors' variant) vs RoPE (standard rotation)")
