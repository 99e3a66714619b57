"""M2 encoders (protocol §2.7): an MLP, a 1-D CNN and a transformer on Gaussian vectors, and a ViT
on images. Each maps one M2 item to a feature vector that the projector then maps into the M1
embedding space, and carries a `classifier` head used only for pretraining (joint training
freezes and ignores it, as the authors do).

Two entry points with a fixed number of leading axes, so the input kind is never guessed:

* `features(items)`: items shaped (n, *item) -> (n, out_dim);
* `encode(seqs)`: sequences shaped (S, N+1, *item) -> (S, N+1, out_dim).

`item` is (D2,) for the vector encoders and (C, H, W) for the ViT; a grayscale ViT (C = 1) also
takes (H, W). The authors' `extract_features` guessed from the tensor rank and channel count, so a
grayscale sequence with N+1 = 3 items read as one RGB batch (§2.7); here the method says which.

Module and parameter names follow the authors' code (`feature_extractor`, `conv`, `patch_embed`,
`to_patch_embedding`, `transformer.layers.i.0.to_qkv`, ...), so their checkpoints load as is.
Initialisations are theirs: N(0, 0.02²) with zero biases where they re-initialise, PyTorch defaults
elsewhere (the CNN, the classifier of the ViT), CLS tokens N(0, 1e-6²) (ViT) or N(0, 1) (vectors).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmicl.io import atomic_write, load_torch
from mmicl.models.encoder_specs import (
    CNNEncoderConfig, EncoderConfig, MLPEncoderConfig, TransformerEncoderConfig,
    ViTEncoderConfig, config_to_dict,
)

_CHECKPOINT_FORMAT = "mmicl-encoder-v1"


def _normal_(linear: nn.Linear, std: float = 0.02) -> None:
    nn.init.normal_(linear.weight, std=std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)


class Encoder(nn.Module):
    """Shared input handling; subclasses define `_features(x)` on (n, *item) tensors."""

    cfg: EncoderConfig
    classifier: nn.Linear

    @property
    def out_dim(self) -> int:
        return self.cfg.out_dim

    def _accepted_items(self) -> list[tuple[int, ...]]:
        return [tuple(self.cfg.item_shape)]

    def _as_items(self, x: torch.Tensor, lead: int, what: str) -> torch.Tensor:
        """x shaped (*lead axes, *item) -> (prod(lead axes), *item_shape), or a clear error."""
        for item in self._accepted_items():
            if x.dim() == lead + len(item) and tuple(x.shape[lead:]) == item:
                return x.reshape(-1, *self.cfg.item_shape)
        axes = {1: "(n, ", 2: "(S, N+1, "}[lead]
        expected = " or ".join(axes + ", ".join(map(str, item)) + ")"
                               for item in self._accepted_items())
        raise ValueError(f"{type(self).__name__}.{what}: input has shape {tuple(x.shape)}; "
                         f"expected {expected} for {self.cfg}")

    def features(self, items: torch.Tensor) -> torch.Tensor:
        """(n, *item) -> (n, out_dim)."""
        return self._features(self._as_items(items, 1, "features"))

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """(S, N+1, *item) -> (S, N+1, out_dim): every item of every sequence, one batch."""
        S, n = seqs.shape[:2]
        return self._features(self._as_items(seqs, 2, "encode")).view(S, n, self.out_dim)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """Pretraining logits (n, num_classes)."""
        return self.classifier(self.features(items))

    def depends_on_train_mode(self) -> bool:
        """True if train mode changes the features: dropout with p > 0 or BatchNorm (batch
        statistics). Such an encoder gives cacheable features only in eval mode."""
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                return True
            if isinstance(module, nn.Dropout) and module.p > 0:
                return True
            if isinstance(module, (nn.MultiheadAttention, _Attention)) and module.dropout > 0:
                return True
        return False

    def num_params(self, classifier: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if classifier else n - sum(p.numel() for p in self.classifier.parameters())


class MLPEncoder(Encoder):
    def __init__(self, cfg: MLPEncoderConfig):
        super().__init__()
        self.cfg = cfg
        layers, prev = [], cfg.input_dim
        for width in (*cfg.hidden_sizes, cfg.output_dim):
            layers += [nn.Linear(prev, width), nn.ReLU()]
            prev = width
        self.feature_extractor = nn.Sequential(*layers)
        self.classifier = nn.Linear(cfg.output_dim, cfg.num_classes)
        for module in (*self.feature_extractor, self.classifier):
            if isinstance(module, nn.Linear):
                _normal_(module)

    def _features(self, x):
        return self.feature_extractor(x)


class CNNEncoder(Encoder):
    """4 x [Conv1d k3 -> BatchNorm -> ReLU -> MaxPool 2], Conv1d -> BN -> ReLU, global max pool.
    BatchNorm makes the features depend on the batch in train mode (see EncoderFusion)."""

    CHANNELS = (16, 32, 48, 96)

    def __init__(self, cfg: CNNEncoderConfig):
        super().__init__()
        self.cfg = cfg
        layers, prev = [], 1
        for width in self.CHANNELS:
            layers += [nn.Conv1d(prev, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(),
                       nn.MaxPool1d(2)]
            prev = width
        layers += [nn.Conv1d(prev, cfg.output_dim, 3, padding=1), nn.BatchNorm1d(cfg.output_dim),
                   nn.ReLU(), nn.AdaptiveMaxPool1d(1)]
        self.conv = nn.Sequential(*layers)
        self.classifier = nn.Linear(cfg.output_dim, cfg.num_classes)

    def _features(self, x):
        return self.conv(x.unsqueeze(1)).squeeze(-1)


class TransformerEncoder(Encoder):
    """Segments of D2 as tokens; PyTorch's post-norm TransformerEncoder; CLS output = feature.

    nn.TransformerEncoder deep-copies one layer, so every layer starts with the same attention
    in-projection (the authors' init, kept); out-proj and FFN are then re-drawn per layer."""

    def __init__(self, cfg: TransformerEncoderConfig):
        super().__init__()
        self.cfg = cfg
        width = cfg.output_dim
        self.patch_embed = nn.Linear(cfg.segment_len, width)
        self.cls_token = nn.Parameter(torch.randn(1, 1, width))
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.n_segments + 1, width))
        layer = nn.TransformerEncoderLayer(width, cfg.num_heads, cfg.ff_mult * width,
                                           cfg.dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(width, cfg.num_classes)
        for block in self.encoder.layers:
            for linear in (block.self_attn.out_proj, block.linear1, block.linear2):
                _normal_(linear)
        _normal_(self.classifier)

    def _features(self, x):
        tokens = self.patch_embed(x.view(x.shape[0], self.cfg.n_segments, self.cfg.segment_len))
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.encoder(tokens + self.pos_embedding)[:, 0]


class _Patchify(nn.Module):
    """(n, C, H, W) -> (n, patches, p*p*C), patches row-major, pixels in (p1, p2, c) order."""

    def __init__(self, patch: int):
        super().__init__()
        self.patch = patch

    def forward(self, x):
        n, c, h, w = x.shape
        p = self.patch
        x = x.view(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return x.reshape(n, (h // p) * (w // p), p * p * c)


class _Attention(nn.Module):
    """Pre-LN self-attention; no output projection for one head (as the authors' vit.py)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        nn.init.normal_(self.to_qkv.weight, std=0.02)
        if heads > 1:
            self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
            _normal_(self.to_out[0])
        else:
            self.to_out = nn.Identity()

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = (z.view(n, t, self.heads, d // self.heads).transpose(1, 2)
                   for z in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        out = F.scaled_dot_product_attention(q, k, v,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.to_out(out.transpose(1, 2).reshape(n, t, d))


class _FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout))
        _normal_(self.net[1])
        _normal_(self.net[4])

    def forward(self, x):
        return self.net(x)


class _Transformer(nn.Module):
    def __init__(self, cfg: ViTEncoderConfig):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([_Attention(cfg.dim, cfg.heads, cfg.dropout),
                           _FeedForward(cfg.dim, cfg.mlp_ratio * cfg.dim, cfg.dropout)])
            for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x):
        for attention, feed_forward in self.layers:
            x = x + attention(x)
            x = x + feed_forward(x)
        return self.norm(x)


class ViTEncoder(Encoder):
    """patchify -> LN -> Linear -> LN; CLS + learned positions; pre-LN blocks; final LN; CLS out."""

    def __init__(self, cfg: ViTEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.to_patch_embedding = nn.Sequential(
            _Patchify(cfg.patch_size), nn.LayerNorm(cfg.patch_dim),
            nn.Linear(cfg.patch_dim, cfg.dim), nn.LayerNorm(cfg.dim))
        _normal_(self.to_patch_embedding[2])
        self.pos_embedding = nn.Parameter(torch.randn(1, cfg.n_patches + 1, cfg.dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, cfg.dim) * 1e-6)
        self.dropout = nn.Dropout(cfg.dropout)
        self.transformer = _Transformer(cfg)
        self.classifier = nn.Linear(cfg.dim, cfg.num_classes)

    def _accepted_items(self):
        c, h, w = self.cfg.item_shape
        return [(c, h, w)] + ([(h, w)] if c == 1 else [])

    def _features(self, x):
        x = self.to_patch_embedding(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embedding
        return self.transformer(self.dropout(x))[:, 0]


ENCODERS = {"mlp": MLPEncoder, "cnn": CNNEncoder, "transformer": TransformerEncoder,
            "vit": ViTEncoder}


def build_encoder(cfg: EncoderConfig) -> Encoder:
    if cfg.kind not in ENCODERS:
        raise ValueError(f"no encoder for config {cfg!r}")
    return ENCODERS[cfg.kind](cfg)


def save_encoder(encoder: Encoder, path: str | Path) -> Path:
    """Weights and config in one file, written atomically."""
    payload = {"format": _CHECKPOINT_FORMAT, "config": config_to_dict(encoder.cfg),
               "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()}}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_encoder(path: str | Path, cfg: EncoderConfig) -> Encoder:
    """An encoder of config `cfg` with the weights of `path` (ours, or a bare state dict such as
    the authors'). A checkpoint of another shape stops here, naming the file and every tensor
    that is missing, unexpected or of another shape."""
    state = load_torch(path)
    saved_cfg = None
    if isinstance(state, dict) and state.get("format") == _CHECKPOINT_FORMAT:
        saved_cfg, state = state.get("config"), state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: not an encoder checkpoint (expected a state dict of tensors)")
    encoder = build_encoder(cfg)
    expected = encoder.state_dict()
    problems = [f"missing {k} {tuple(v.shape)}" for k, v in expected.items() if k not in state]
    problems += [f"unexpected {k} {tuple(v.shape)}" for k, v in state.items() if k not in expected]
    problems += [f"{k} has shape {tuple(state[k].shape)} in the file, expected "
                 f"{tuple(v.shape)}" for k, v in expected.items()
                 if k in state and state[k].shape != v.shape]
    if problems:
        saved = f" (the file was saved for {saved_cfg})" if saved_cfg else ""
        raise ValueError(f"encoder checkpoint {path} does not fit {cfg}{saved}: "
                         + "; ".join(problems))
    encoder.load_state_dict(state)
    return encoder
