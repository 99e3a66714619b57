"""Image data for the M2 modality: Omniglot (and its offline glyph stand-in), Mini-ImageNet, and
the image stream that turns multimodal class sequences into image sequences."""
