"""Encoders of §2.7: parameter counts computed by hand, shapes, dispatch and shape errors."""

import pytest
import torch

from mmicl.models.encoder_specs import (
    CNNEncoderConfig, MLPEncoderConfig, TransformerEncoderConfig, ViTEncoderConfig,
    config_from_dict, config_to_dict, encoder_config,
)
from mmicl.models.encoders import build_encoder, load_encoder, save_encoder

torch.set_num_threads(1)

# (config, feature parameters, classifier parameters), every number worked out by hand:
PARAM_COUNTS = [
    # MLP D2=64 -> 64 -> 32: (64*64+64) + (64*32+32); classifier 32*256+256
    (MLPEncoderConfig(input_dim=64), 4160 + 2080, 8448),
    # CNN: conv k3 + BN(weight, bias) per block: (48+16+32) + (1536+32+64) + (4608+48+96)
    #      + (13824+96+192) + (96*32*3+32+64); independent of D2
    (CNNEncoderConfig(input_dim=64), 96 + 1632 + 4752 + 14112 + 9312, 8448),
    # transformer on 512 = 4 x 128: embed 128*32+32, CLS 32, positions 5*32, per layer
    # in_proj 3*32*32+96, out_proj 32*32+32, FF 32*160+160 and 160*32+32, two LayerNorms 2*64
    (TransformerEncoderConfig(input_dim=512), 4128 + 32 + 160 + 2 * (3168 + 1056 + 5280 + 5152
                                                                      + 128), 8448),
    # Omniglot ViT 105/15, dim 64, depth 2, 1 head: LN(225) 450, Linear 225*64+64, LN(64) 128,
    # positions 50*64, CLS 64; per block LN 128 + qkv 64*192 (no bias, no out-proj for 1 head)
    # + LN 128 + 64*256+256 + 256*64+64; final LN 128; classifier 64*256+256
    (ViTEncoderConfig(), 450 + 14464 + 128 + 3200 + 64 + 2 * (128 + 12288 + 128 + 16640 + 16448)
     + 128, 16640),
    # RGB ViT 84/7, dim 48, depth 1, 6 heads (so an out-projection 48*48+48): patch_dim 147
    (ViTEncoderConfig(image_size=84, patch_size=7, channels=3, dim=48, depth=1, heads=6,
                      dropout=0.1, num_classes=64),
     294 + (147 * 48 + 48) + 96 + 145 * 48 + 48 + (96 + 48 * 144 + 2352 + 96 + 9408 + 9264) + 96,
     48 * 64 + 64),
]


@pytest.mark.parametrize("cfg,n_features,n_classifier", PARAM_COUNTS,
                         ids=lambda v: getattr(v, "kind", None))
def test_parameter_counts(cfg, n_features, n_classifier):
    encoder = build_encoder(cfg)
    assert encoder.num_params(classifier=False) == n_features
    assert encoder.num_params() == n_features + n_classifier


@pytest.mark.parametrize("cfg", [c for c, _, _ in PARAM_COUNTS], ids=lambda c: c.kind)
def test_shapes_and_consistency(cfg):
    torch.manual_seed(0)
    encoder = build_encoder(cfg).eval()
    seqs = torch.randn(3, 5, *cfg.item_shape)
    with torch.no_grad():
        out = encoder.encode(seqs)
        flat = encoder.features(seqs.flatten(0, 1))
        logits = encoder(seqs[0])
    assert out.shape == (3, 5, cfg.out_dim)
    assert logits.shape == (5, cfg.num_classes)
    torch.testing.assert_close(out.flatten(0, 1), flat)


def test_grayscale_vit_takes_both_layouts_and_three_items_stay_a_sequence():
    """(S, 3, H, W) is three grayscale items per sequence, never an RGB batch (§2.7 ambiguity)."""
    torch.manual_seed(0)
    vit = build_encoder(ViTEncoderConfig(image_size=30, patch_size=15, dim=16)).eval()
    seqs = torch.rand(2, 3, 30, 30)
    with torch.no_grad():
        a, b = vit.encode(seqs), vit.encode(seqs.unsqueeze(2))
    assert a.shape == (2, 3, 16)
    torch.testing.assert_close(a, b)
    rgb = build_encoder(ViTEncoderConfig(image_size=30, patch_size=15, dim=16, channels=3))
    with pytest.raises(ValueError, match=r"\(S, N\+1, 3, 30, 30\)"):
        rgb.encode(seqs)  # an RGB ViT does not take grayscale sequences


def test_patch_order_matches_einops_layout():
    """Patch (i, j) holds pixels x[c, i*p+a, j*p+b] at index (a*p + b)*C + c."""
    from mmicl.models.encoders import _Patchify
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    out = _Patchify(3)(x)
    for i in range(2):
        for j in range(2):
            for a in range(3):
                for b in range(3):
                    for c in range(3):
                        pixel = x[1, c, i * 3 + a, j * 3 + b]
                        assert out[1, i * 2 + j, (a * 3 + b) * 3 + c] == pixel


def test_transformer_d2_not_a_multiple_of_segment():
    with pytest.raises(ValueError,
                       match=r"input_dim \(D2\)=200 is not a multiple of segment_len=128"):
        TransformerEncoderConfig(input_dim=200)


def test_cnn_d2_below_16():
    with pytest.raises(ValueError, match=r"input_dim \(D2\)=8.*>= 16"):
        CNNEncoderConfig(input_dim=8)


def test_vit_unpatchable_image():
    with pytest.raises(ValueError, match=r"image_size=105 is not a multiple of patch_size=16.*"
                                         r"\[3, 5, 7, 15, 21, 35\]"):
        ViTEncoderConfig(image_size=105, patch_size=16)


def test_wrong_input_shape_names_expected_shape():
    mlp = build_encoder(MLPEncoderConfig(input_dim=64))
    with pytest.raises(ValueError, match=r"shape \(2, 9, 32\); expected \(S, N\+1, 64\)"):
        mlp.encode(torch.zeros(2, 9, 32))
    vit = build_encoder(ViTEncoderConfig())
    with pytest.raises(ValueError,
                       match=r"expected \(S, N\+1, 1, 105, 105\) or \(S, N\+1, 105, 105\)"):
        vit.encode(torch.zeros(2, 9, 84, 84))


def test_checkpoint_round_trip_and_shape_mismatch(tmp_path):
    torch.manual_seed(0)
    cfg = ViTEncoderConfig(image_size=30, patch_size=15, dim=16, num_classes=10)
    vit = build_encoder(cfg).eval()
    path = save_encoder(vit, tmp_path / "enc.pt")
    loaded = load_encoder(path, cfg).eval()
    x = torch.rand(4, 30, 30)
    with torch.no_grad():
        torch.testing.assert_close(loaded.features(x), vit.features(x))
    other = ViTEncoderConfig(image_size=30, patch_size=10, dim=16, num_classes=10)
    with pytest.raises(ValueError) as err:
        load_encoder(path, other)
    message = str(err.value)
    assert str(path) in message
    assert "pos_embedding has shape (1, 5, 16) in the file, expected (1, 10, 16)" in message
    # a bare state dict (the authors' format) is checked the same way
    torch.save(build_encoder(MLPEncoderConfig(input_dim=32)).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match=r"bare\.pt does not fit .*feature_extractor\.0\.weight "
                                         r"has shape \(64, 32\) in the file, expected \(64, 64\)"):
        load_encoder(tmp_path / "bare.pt", MLPEncoderConfig(input_dim=64))


def test_config_codec():
    for cfg, _, _ in PARAM_COUNTS:
        assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="has no setting"):
        encoder_config("vit", image_sise=84)
    with pytest.raises(ValueError, match="kind='resnet' is unknown"):
        encoder_config("resnet")
