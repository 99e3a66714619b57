"""Fig. 4a: after high-K1 Stage-1 pretraining, IC and IW accuracy over M2 classes K2 × burstiness B."""

from mmicl.figures.common import pair_heatmap_figure


def make(df, sweep, defaults):
    return pair_heatmap_figure(df, sweep, defaults, title="Fig. 4a: K2 × B after M1 pretraining")
