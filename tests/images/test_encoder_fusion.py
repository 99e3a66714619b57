"""EncoderFusion: pretrained/random x frozen/trainable encoders, freeze_layers, Stage-1 loading."""

import pytest
import torch

from mmicl.data.multimodal import generate_multimodal
from mmicl.data.specs import MultimodalSpec
from mmicl.data.worlds import make_multimodal_world
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.models.encoder_fusion import EncoderFusion, build_encoder_fusion
from mmicl.models.encoder_specs import CNNEncoderConfig, MLPEncoderConfig, TransformerEncoderConfig
from mmicl.models.encoders import build_encoder, save_encoder
from mmicl.models.multimodal import MultimodalConfig

DECODER = DecoderConfig(content_dim=16, n_labels=8, pe="rope")


def trainable(module):
    return {n for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("enc", [MLPEncoderConfig(input_dim=32, num_classes=16),
                                 CNNEncoderConfig(input_dim=32, num_classes=16),
                                 TransformerEncoderConfig(input_dim=32, segment_len=8,
                                                          num_classes=16)],
                         ids=lambda c: c.kind)
def test_gaussian_m2_through_each_encoder(enc):
    world = make_multimodal_world(0, K1=32, L1=8, D1=16, K2=16, L2=8, D2=32)
    batch = generate_multimodal(world, MultimodalSpec(N=4, B=2), 6,
                                torch.Generator().manual_seed(0))
    model = build_encoder_fusion(DECODER, enc)
    logits = model(batch.inputs, batch.m2_inputs)
    assert logits.shape == (6, 8)
    assert model.projector.linears[0].in_features == enc.out_dim == 32


def test_freezing_options():
    enc = CNNEncoderConfig(input_dim=32, num_classes=16)
    model = build_encoder_fusion(DECODER, enc, freeze_encoder=False)
    names = trainable(model)
    assert not any(n.startswith("encoder.classifier") for n in names)  # always frozen
    assert any(n.startswith("encoder.conv") for n in names)
    assert any(n.startswith("decoder.layers") for n in names)
    frozen = build_encoder_fusion(DECODER, enc, freeze_encoder=True, freeze_layers=True)
    names = trainable(frozen)
    assert not any(n.startswith(("encoder.", "decoder.layers.")) for n in names)
    assert {"decoder.norm.weight", "decoder.out.weight"} <= names  # §9.11
    assert any(n.startswith("projector.") for n in names)
    frozen.train()
    assert frozen.training and not frozen.encoder.training  # BatchNorm uses running statistics
    reference = build_encoder_fusion(DECODER, enc, freeze_encoder=True, frozen_mode="reference")
    reference.train()
    assert reference.encoder.training  # the authors: frozen weights, train-mode BatchNorm


def test_pretrained_encoder_and_stage1_decoder_load(tmp_path):
    enc = MLPEncoderConfig(input_dim=32, num_classes=16)
    torch.manual_seed(1)
    pretrained = build_encoder(enc)
    path = save_encoder(pretrained, tmp_path / "enc.pt")
    stage1 = Decoder(DECODER)
    model = build_encoder_fusion(DECODER, enc, encoder_checkpoint=path,
                                 stage1_state=stage1.state_dict())
    for name, tensor in pretrained.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[name], tensor)
    for name, tensor in stage1.state_dict().items():
        assert torch.equal(model.decoder.state_dict()[name], tensor)
    random = build_encoder_fusion(DECODER, enc)
    assert not torch.equal(random.encoder.feature_extractor[0].weight,
                           pretrained.feature_extractor[0].weight)


def test_projector_width_must_match_encoder():
    enc = build_encoder(MLPEncoderConfig(input_dim=32))
    with pytest.raises(ValueError, match=r"m2_dim=64 must equal the encoder's out_dim=32"):
        EncoderFusion(MultimodalConfig(DECODER, 64), enc)
