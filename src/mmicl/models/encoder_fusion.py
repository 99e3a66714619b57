"""Stage 2 with an M2 encoder ("Stage 3", protocol §3.4): encoder -> projector -> the Stage-1
decoder. A `MultimodalDecoder` whose projector reads the encoder's features (m2_dim =
encoder.out_dim), so a Stage-1 state dict loads into `model.decoder` as for Stage 2, and the
forward signature and the analysis adapter (modality zeroing, head masks, attention maps) are
the same: only `m2_features` (what the projector reads) differs. Zeroing M2 zeroes the features
entering the projector (so the M2 tokens, the projector having no bias), not the raw images.

Options, as the authors' `main_mm_all*.py`:

* pretrained or random encoder: `build_encoder_fusion(..., encoder_checkpoint=path | None)`;
* frozen or trainable encoder (`freeze_encoder`); the encoder's classifier is always frozen and
  never used;
* `freeze_layers`: the decoder blocks (`layers.*`) stop learning; the final norm and the
  output head stay trainable (§9.11, `MultimodalDecoder.freeze_decoder`).

A frozen encoder runs in eval mode here (`frozen_mode="eval"`): no dropout, BatchNorm with its
running statistics, so it is a fixed feature map, which is what "frozen" means in the
representation-vs-optimisation comparison. The authors only set requires_grad = False and
train in train mode, so their frozen CNN still normalises with batch statistics (and updates its
running averages) and their frozen transformer/ViT still applies dropout; `frozen_mode=
"reference"` keeps that. The two coincide for the Omniglot ViT (no dropout, no BatchNorm).

With a frozen, eval-mode encoder and eps2 = 0, `use_cached_features(cache)` makes the model take
the features of `mmicl.data.images.stream.FeatureCache` as its M2 input instead of images.
"""

from __future__ import annotations

import torch

from mmicl.models.decoder import DecoderConfig
from mmicl.models.encoders import Encoder, build_encoder, load_encoder
from mmicl.models.multimodal import MultimodalConfig, MultimodalDecoder
from mmicl.models.encoder_specs import EncoderConfig

FROZEN_MODES = ("eval", "reference")


class EncoderFusion(MultimodalDecoder):
    def __init__(self, cfg: MultimodalConfig, encoder: Encoder, freeze_encoder: bool = False,
                 freeze_layers: bool = False, frozen_mode: str = "eval"):
        if cfg.m2_dim != encoder.out_dim:
            raise ValueError(f"MultimodalConfig.m2_dim={cfg.m2_dim} must equal the encoder's "
                             f"out_dim={encoder.out_dim} (the projector reads its features)")
        if frozen_mode not in FROZEN_MODES:
            raise ValueError(f"frozen_mode={frozen_mode!r}; expected one of {FROZEN_MODES}")
        super().__init__(cfg)
        self.encoder = encoder
        self.freeze_encoder, self.frozen_mode = freeze_encoder, frozen_mode
        self.feature_input = False  # True once use_cached_features: m2_inputs are features
        self.cache_fingerprint = None
        for p in encoder.classifier.parameters():
            p.requires_grad_(False)
        if freeze_encoder:
            for p in encoder.parameters():
                p.requires_grad_(False)
        if freeze_layers:
            self.freeze_decoder()
        self.train()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_encoder and self.frozen_mode == "eval":
            self.encoder.eval()
        return self

    def use_cached_features(self, cache) -> None:
        """Take cached encoder features as M2 input from now on. Only a frozen encoder whose
        features do not depend on train mode (or runs in eval mode) qualifies, and the cache
        must come from this encoder's current weights."""
        from mmicl.data.images.stream import encoder_fingerprint
        if not self.freeze_encoder:
            raise ValueError("feature caching needs a frozen encoder (freeze_encoder=True): a "
                             "trainable encoder changes its features every step")
        if self.frozen_mode == "reference" and self.encoder.depends_on_train_mode():
            raise ValueError("frozen_mode='reference' keeps dropout/BatchNorm active in the frozen "
                             "encoder, so its features are not fixed; use frozen_mode='eval'")
        fingerprint = encoder_fingerprint(self.encoder)
        if cache.fingerprint != fingerprint:
            raise ValueError(f"feature cache was computed by another encoder (fingerprint "
                             f"{cache.fingerprint[:12]}, this encoder {fingerprint[:12]})")
        self.feature_input, self.cache_fingerprint = True, fingerprint

    def m2_features(self, m2_inputs: torch.Tensor) -> torch.Tensor:
        """(S, N+1, out_dim) features: the encoder on raw items, or the cached features as is."""
        if not self.feature_input:
            return self.encoder.encode(m2_inputs)
        if m2_inputs.dim() != 3 or m2_inputs.shape[-1] != self.encoder.out_dim:
            raise ValueError(f"cached-feature input has shape {tuple(m2_inputs.shape)}; expected "
                             f"(S, N+1, {self.encoder.out_dim})")
        return m2_inputs


def build_encoder_fusion(decoder: DecoderConfig, encoder: EncoderConfig,
                         encoder_checkpoint=None, freeze_encoder: bool = False,
                         freeze_layers: bool = False, projector: str = "small",
                         frozen_mode: str = "eval", stage1_state: dict | None = None
                         ) -> EncoderFusion:
    """Encoder (pretrained from `encoder_checkpoint`, else random) + projector + decoder (from a
    Stage-1 state dict if given, strictly: every decoder tensor must be there)."""
    enc = (load_encoder(encoder_checkpoint, encoder) if encoder_checkpoint
           else build_encoder(encoder))
    model = EncoderFusion(MultimodalConfig(decoder, enc.out_dim, projector), enc, freeze_encoder,
                          freeze_layers, frozen_mode)
    if stage1_state is not None:
        model.decoder.load_state_dict(stage1_state)
    return model
