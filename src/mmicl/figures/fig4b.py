"""Fig. 4b: M1 noise ε1 against M2 noise ε2 — the paper finds ε2 gains exceed ε1 gains."""

from mmicl.figures.common import pair_heatmap_figure


def make(df, sweep, defaults):
    return pair_heatmap_figure(df, sweep, defaults, title="Fig. 4b: ε1 × ε2")
