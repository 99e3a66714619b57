"""Appendix I2: the K2 x B heatmaps of App. I1 with Mini-ImageNet through a ViT (K2 <= 64, the
training classes of Mini-ImageNet), beside the Gaussian Stage 2."""

from mmicl.figures.app_omniglot import image_heatmaps

MAX_K2 = 64


def make(df, sweep, defaults):
    return image_heatmaps(df, sweep, defaults, ("gaussian", "miniimagenet"),
                          "K2 x B with Mini-ImageNet through a ViT", max_K2=MAX_K2)
