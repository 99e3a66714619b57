"""Configurations of the M2 encoders (protocol §2.7), free of torch so that workflow planning can
import them (run ids, shape checks before any job starts).

Each config is a frozen dataclass whose defaults are the authors' settings in `main_mm_all.py`
(vector encoders: D2 -> 32 features for D1 = 64) or the Omniglot ViT of
`main_mm_all_vit_omniglot.py` (105x105 grayscale, patch 15, depth 2, 1 head, dim = D2 = 64).
Shape errors are raised here, at construction, so a bad sweep stops at planning time:

* the transformer on vectors needs D2 to be a multiple of its segment length;
* the CNN needs D2 >= 16 (four max-pools of 2 before the global pool);
* the ViT needs an image side that its patch side divides.

`encoder_config(kind, **fields)` / `config_to_dict(cfg)` are the JSON codec of a run spec.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

ENCODER_KINDS = ("mlp", "cnn", "transformer", "vit")
CNN_MIN_INPUT = 16  # 4 x MaxPool1d(2) must leave at least one position


def _positive(cfg, *keys: str) -> None:
    for key in keys:
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{type(cfg).__name__}.{key}={value!r} must be a positive integer")


def _probability(cfg, key: str) -> None:
    value = getattr(cfg, key)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{type(cfg).__name__}.{key}={value!r} must lie in [0, 1)")


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@dataclass(frozen=True)
class MLPEncoderConfig:
    """Linear+ReLU per hidden size, then Linear+ReLU to out (features are non-negative)."""

    input_dim: int  # D2
    hidden_sizes: tuple[int, ...] = (64,)  # main_mm_all: [D1] = [64]
    output_dim: int = 32  # main_mm_all: D1 // 2
    num_classes: int = 256  # classifier head for pretraining (K2 of the pretraining world)
    kind = "mlp"

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        _positive(self, "input_dim", "output_dim", "num_classes")
        for h in self.hidden_sizes:
            if isinstance(h, bool) or not isinstance(h, int) or h <= 0:
                raise ValueError(f"MLPEncoderConfig.hidden_sizes={self.hidden_sizes!r}: "
                                 f"every size must be a positive integer")

    @property
    def out_dim(self) -> int:
        return self.output_dim

    @property
    def item_shape(self) -> tuple[int, ...]:
        return (self.input_dim,)


@dataclass(frozen=True)
class CNNEncoderConfig:
    """1-D CNN on the vector as a 1-channel signal: channels 16, 32, 48, 96, then out, BatchNorm."""

    input_dim: int  # D2, at least 16
    output_dim: int = 32
    num_classes: int = 256
    kind = "cnn"

    def __post_init__(self):
        _positive(self, "input_dim", "output_dim", "num_classes")
        if self.input_dim < CNN_MIN_INPUT:
            raise ValueError(
                f"CNNEncoderConfig.input_dim (D2)={self.input_dim}: the CNN encoder halves the "
                f"signal four times before its global pool, so D2 must be >= {CNN_MIN_INPUT}"
            )

    @property
    def out_dim(self) -> int:
        return self.output_dim

    @property
    def item_shape(self) -> tuple[int, ...]:
        return (self.input_dim,)


@dataclass(frozen=True)
class TransformerEncoderConfig:
    """"ViT on vectors": D2 cut into D2/segment_len segments, each a token, plus a CLS token.
    PyTorch's TransformerEncoderLayer (post-norm, ReLU, FF = 5 x width, dropout 0.1)."""

    input_dim: int  # D2 (the authors' feat_dim)
    segment_len: int = 128  # the authors' input_dim: 128 in main_mm_all, so D2 in {128, 256, 512}
    output_dim: int = 32  # token width = feature size
    num_classes: int = 256
    num_layers: int = 2
    num_heads: int = 1
    dropout: float = 0.1
    ff_mult: int = 5
    kind = "transformer"

    def __post_init__(self):
        _positive(self, "input_dim", "segment_len", "output_dim", "num_classes", "num_layers",
                  "num_heads", "ff_mult")
        _probability(self, "dropout")
        if self.input_dim % self.segment_len:
            raise ValueError(
                f"TransformerEncoderConfig.input_dim (D2)={self.input_dim} is not a multiple of "
                f"segment_len={self.segment_len}: the encoder cuts the vector into segments of "
                f"{self.segment_len} (D2 in {{{self.segment_len}, {2 * self.segment_len}, ...}}, "
                f"or a segment_len among {_divisors(self.input_dim)})"
            )
        if self.output_dim % self.num_heads:
            raise ValueError(f"TransformerEncoderConfig.num_heads={self.num_heads} does not "
                             f"divide output_dim={self.output_dim}")

    @property
    def n_segments(self) -> int:
        return self.input_dim // self.segment_len

    @property
    def out_dim(self) -> int:
        return self.output_dim

    @property
    def item_shape(self) -> tuple[int, ...]:
        return (self.input_dim,)


@dataclass(frozen=True)
class ViTEncoderConfig:
    """Pre-LN ViT on square images; the CLS output (after a final LayerNorm) is the feature."""

    image_size: int = 105  # Omniglot; Mini-ImageNet 84
    patch_size: int = 15  # Omniglot 15 (7x7 patches); Mini-ImageNet 7 (12x12)
    channels: int = 1  # 1 grayscale, 3 RGB
    dim: int = 64  # token width = feature size = D2
    depth: int = 2  # Mini-ImageNet 12
    heads: int = 1  # Mini-ImageNet 6
    dropout: float = 0.0  # Mini-ImageNet 0.1 (attention, FFN and embedding dropout)
    mlp_ratio: int = 4
    num_classes: int = 256
    kind = "vit"

    def __post_init__(self):
        _positive(self, "image_size", "patch_size", "channels", "dim", "depth", "heads",
                  "mlp_ratio", "num_classes")
        _probability(self, "dropout")
        if self.image_size % self.patch_size:
            fits = [d for d in _divisors(self.image_size) if 1 < d < self.image_size]
            raise ValueError(
                f"ViTEncoderConfig: image_size={self.image_size} is not a multiple of "
                f"patch_size={self.patch_size}, so the image cannot be cut into patches; "
                f"patch sizes that fit: {fits}"
            )
        if self.dim % self.heads:
            raise ValueError(f"ViTEncoderConfig.heads={self.heads} does not divide dim={self.dim}")

    @property
    def n_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size ** 2

    @property
    def out_dim(self) -> int:
        return self.dim

    @property
    def item_shape(self) -> tuple[int, ...]:
        return (self.channels, self.image_size, self.image_size)


EncoderConfig = MLPEncoderConfig | CNNEncoderConfig | TransformerEncoderConfig | ViTEncoderConfig
CONFIG_CLASSES = {cls.kind: cls for cls in (MLPEncoderConfig, CNNEncoderConfig,
                                            TransformerEncoderConfig, ViTEncoderConfig)}


def encoder_config(kind: str, **values) -> EncoderConfig:
    """The config of encoder `kind` from plain values (a run spec's JSON); unknown keys raise."""
    if kind not in CONFIG_CLASSES:
        raise ValueError(f"encoder kind={kind!r} is unknown; expected one of: "
                         f"{', '.join(ENCODER_KINDS)}")
    cls = CONFIG_CLASSES[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"encoder kind={kind!r} has no setting(s) {unknown}; "
                         f"expected some of: {sorted(known)}")
    return cls(**values)


def config_to_dict(cfg: EncoderConfig) -> dict:
    """{'kind': ..., field: value}; hidden_sizes as a list so the dict is JSON-ready."""
    out = {"kind": cfg.kind, **asdict(cfg)}
    if "hidden_sizes" in out:
        out["hidden_sizes"] = list(out["hidden_sizes"])
    return out


def config_from_dict(values: dict) -> EncoderConfig:
    values = dict(values)
    if "kind" not in values:
        raise ValueError(f"encoder config {values!r} has no 'kind'; expected one of "
                         f"{', '.join(ENCODER_KINDS)}")
    return encoder_config(values.pop("kind"), **values)
