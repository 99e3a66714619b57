"""The M2 encoder and image source of a Stage-2 run, from its parameters (torch-free, so shape
errors stop the workflow at planning time).

Stage-2 keys (config `stage2`, docs/images.md): `encoder` (none | mlp | cnn | transformer | vit),
`encoder_pretrained`, `freeze_encoder`, `m2_data` (gaussian | glyphs | omniglot | miniimagenet).
The encoders take the authors' shapes (protocol §2.7, §3.4): vector encoders read D2 and give
D1 // 2 = 32 features (MLP hidden [D1], transformer segments of 128); the ViT gives D2 features
(Omniglot 105 x 105 grey, patch 15, depth 2, 1 head; Mini-ImageNet 84 x 84 RGB, patch 7,
depth 12, 6 heads, dropout 0.1, pretrained on its 64 training classes).
"""

from __future__ import annotations

from collections.abc import Mapping

from mmicl.models.encoder_specs import (
    CNNEncoderConfig, EncoderConfig, MLPEncoderConfig, TransformerEncoderConfig, ViTEncoderConfig,
)

NO_ENCODER = "none"
VECTOR_ENCODERS = ("mlp", "cnn", "transformer")
IMAGE_SOURCES = ("glyphs", "omniglot", "miniimagenet")
M2_SOURCES = ("gaussian",) + IMAGE_SOURCES
MINI_IMAGENET_CLASSES = 64  # its training split; K2 <= 64
# defaults of the keys, for specs written before they existed
ENCODER_DEFAULTS = {"encoder": NO_ENCODER, "encoder_pretrained": True, "freeze_encoder": True,
                    "m2_data": "gaussian"}


def image_keys(p2: Mapping) -> dict:
    """The four encoder/image keys of a Stage-2 parameter dict (defaults where absent)."""
    return {k: p2.get(k, v) for k, v in ENCODER_DEFAULTS.items()}


def encoder_spec(D1: int, p2: Mapping) -> EncoderConfig | None:
    """The encoder config of a Stage-2 run (None: the projector reads M2 directly)."""
    keys = image_keys(p2)
    kind, data = keys["encoder"], keys["m2_data"]
    if data not in M2_SOURCES:
        raise ValueError(f"m2_data={data!r}; expected one of: {', '.join(M2_SOURCES)}")
    if data in IMAGE_SOURCES and kind != "vit":
        raise ValueError(f"m2_data={data!r} holds images: it needs encoder=vit (got "
                         f"encoder={kind!r})")
    if data == "gaussian" and kind == "vit":
        raise ValueError("encoder=vit reads images: set m2_data to glyphs, omniglot or "
                         "miniimagenet (got m2_data='gaussian')")
    K2, D2 = int(p2["K2"]), int(p2["D2"])
    if kind == NO_ENCODER:
        return None
    if kind == "mlp":
        return MLPEncoderConfig(input_dim=D2, hidden_sizes=(D1,), output_dim=D1 // 2,
                                num_classes=K2)
    if kind == "cnn":
        return CNNEncoderConfig(input_dim=D2, output_dim=D1 // 2, num_classes=K2)
    if kind == "transformer":
        return TransformerEncoderConfig(input_dim=D2, output_dim=D1 // 2, num_classes=K2)
    if kind == "vit":
        if data == "miniimagenet":
            if K2 > MINI_IMAGENET_CLASSES:
                raise ValueError(f"K2={K2} exceeds the {MINI_IMAGENET_CLASSES} training classes "
                                 f"of Mini-ImageNet (m2_data=miniimagenet needs K2 <= 64)")
            return ViTEncoderConfig(image_size=84, patch_size=7, channels=3, dim=D2, depth=12,
                                    heads=6, dropout=0.1, num_classes=MINI_IMAGENET_CLASSES)
        return ViTEncoderConfig(image_size=105, patch_size=15, channels=1, dim=D2, depth=2,
                                heads=1, num_classes=K2)
    raise ValueError(f"encoder={kind!r}; expected one of: none, mlp, cnn, transformer, vit")


def caches_features(p2: Mapping) -> bool:
    """Frozen-feature caching applies: images, a frozen encoder and no pixel noise."""
    keys = image_keys(p2)
    return (keys["m2_data"] in IMAGE_SOURCES and keys["freeze_encoder"]
            and float(p2["eps2"]) == 0.0)
