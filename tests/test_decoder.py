"""The decoder: parameter counts, the authors' RoPE quirk, attention shapes, knockout equivalence."""

import math

import pytest
import torch

from mmicl.models.decoder import (
    PE_KINDS, Decoder, DecoderConfig, alibi_slopes, apply_rope, rope_tables,
)

CONTENT_DIM = {"ape": 63, "hybrid": 62, "rope": 64, "alibi": 64}  # width 128 or 64


def make(pe="rope", heads=1, seed=0, **kw):
    torch.manual_seed(seed)
    return Decoder(DecoderConfig(content_dim=kw.pop("content_dim", CONTENT_DIM[pe]), n_labels=32,
                                 n_heads=heads, pe=pe, **kw))


def inputs(model, S=4, N=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(S, 2 * N + 1, model.cfg.content_dim, generator=g)
    offsets = torch.randint(0, 2 * model.cfg.n_max - 2 * N + 1, (S,), generator=g)
    return x, offsets


def test_parameter_counts_match_protocol():
    # RoPE, D=64 (width 64): attention 3*64^2, MLP 3*(64^2+64), two norms 2*64 per layer.
    per_layer = 3 * 64**2 + 3 * (64**2 + 64) + 2 * 64
    assert per_layer == 24_896
    assert make("rope").num_params() == 2 * per_layer + 64 + 64 * 32 == 51_904
    # APE, D=64: width 65 + 64 = 129.
    w = 129
    per_layer = 3 * w**2 + 3 * (w**2 + w) + 2 * w
    assert per_layer == 100_491
    model = make("ape", content_dim=64)
    assert model.num_params() == 2 * per_layer + w + w * 32


def test_output_projection_only_with_several_heads():
    assert not any(".wo." in k for k in make("rope", heads=1).state_dict())
    keys = make("rope", heads=2).state_dict()
    assert "layers.0.attention.wo.weight" in keys and "layers.1.attention.wo.weight" in keys
    assert {"norm.weight", "out.weight", "layers.0.feed_forward.w1.bias",
            "layers.0.attention_norm.weight", "layers.0.ffn_norm.weight"} <= set(keys)


def rope_matrix(pos, impl, d=8):
    """The linear map the RoPE of position `pos` applies to a head vector, column by column."""
    cos, sin = rope_tables(d, 32, 10000.0)
    eye = torch.eye(d, dtype=torch.float32)
    return apply_rope(eye, cos[pos], sin[pos], impl).T  # column j = image of e_j


def test_standard_rope_is_an_orthogonal_relative_rotation():
    for m in (1, 3, 7):
        M = rope_matrix(m, "standard")
        torch.testing.assert_close(M.T @ M, torch.eye(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(rope_matrix(2, "standard").T @ rope_matrix(5, "standard"),
                               rope_matrix(10, "standard").T @ rope_matrix(13, "standard"),
                               atol=1e-5, rtol=0)


def test_reference_rope_is_neither_orthogonal_nor_relative():
    M = rope_matrix(3, "reference")
    assert (M.T @ M - torch.eye(8)).abs().max() > 0.1
    diff = (rope_matrix(2, "reference").T @ rope_matrix(5, "reference")
            - rope_matrix(10, "reference").T @ rope_matrix(13, "reference")).abs().max()
    assert diff > 0.1


@pytest.mark.parametrize("pe", PE_KINDS)
@pytest.mark.parametrize("heads", [1, 2, 4])
def test_attention_shape_causality_and_normalisation(pe, heads):
    model = make(pe, heads)
    x, off = inputs(model)
    logits, attn = model(x, off, return_attn=True)
    assert logits.shape == (4, 32)
    assert attn.shape == (2, 4, heads, 17, 17)
    upper = torch.triu(torch.ones(17, 17, dtype=torch.bool), 1)
    assert attn[..., upper].abs().max() == 0
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 4, heads, 17))
    # a future token cannot change earlier attention rows
    x2 = x.clone()
    x2[:, -1] += 1.0
    _, attn2 = model(x2, off, return_attn=True)
    torch.testing.assert_close(attn[..., :-1, :], attn2[..., :-1, :])


def test_ape_block_sits_at_shift_plus_position():
    model = make("ape")
    x, off = inputs(model)
    emb = model.embed(x, off)
    assert emb.shape == (4, 17, 65 + 63)
    for s in range(4):
        for t in range(17):
            row = emb[s, t, :65]
            assert row.sum() == 1 and row[off[s] + t] == 1
    assert torch.equal(emb[..., 65:], x)
    assert make("hybrid").embed(x[..., :62], off).shape[-1] == 66 + 62


def test_ape_requires_offsets_and_rope_ignores_them():
    model = make("ape")
    x, off = inputs(model)
    with pytest.raises(ValueError, match="pos_offsets"):
        model(x)
    rope = make("rope")
    x, off = inputs(rope)
    assert torch.equal(rope(x, off), rope(x))


def test_ape_offsets_must_fit_the_position_block():
    model = make("ape")  # 65 columns, 17 tokens: shifts 0..48
    x, _ = inputs(model, S=2)
    model(x, torch.tensor([0, 48]))
    with pytest.raises(ValueError, match="n_pos_columns=65"):
        model(x, torch.tensor([0, 49]))
    with pytest.raises(ValueError, match="0 <= pos_offsets"):
        model(x, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match=r"pos_offsets has shape \(2, 1\)"):
        model(x, torch.zeros(2, 1, dtype=torch.long))
    hybrid = make("hybrid")  # 66 columns: one more shift
    hybrid(x[..., :62], torch.tensor([0, 49]))


def test_content_width_is_checked():
    model = make("rope")
    with pytest.raises(ValueError, match="content_dim=64"):
        model(torch.zeros(2, 17, 63))


def test_alibi_bias_is_minus_slope_times_distance():
    # Wq = Wk = 0 leaves only the ALiBi bias: row i = softmax(-slope * (i - j)) over j <= i.
    model = make("alibi", heads=2)
    for layer in model.layers:
        layer.attention.wq.weight.data.zero_()
        layer.attention.wk.weight.data.zero_()
    x, _ = inputs(model, S=1)
    _, attn = model(x, return_attn=True)
    T = 17
    i, j = torch.arange(T).view(T, 1), torch.arange(T).view(1, T)
    for h, slope in enumerate([2**-4, 2**-8]):
        bias = torch.where(j <= i, -slope * (i - j).float(), torch.tensor(float("-inf")))
        torch.testing.assert_close(attn[:, 0, h], torch.softmax(bias, -1).expand(2, T, T))
    assert attn[0, 0, 0, -1, -1] > attn[0, 0, 0, -1, 0]  # recent keys favoured


def test_hybrid_applies_rope_and_ape_does_not():
    x, off = inputs(make("ape"))  # 63 content columns; offsets fit both blocks
    impls = ("reference", "standard")
    hybrid = [make("hybrid", rope_impl=impl)(x[..., :62], off) for impl in impls]
    assert not torch.allclose(*hybrid)
    ape = [make("ape", rope_impl=impl)(x, off) for impl in impls]
    assert torch.equal(*ape)


@pytest.mark.parametrize("pe", PE_KINDS)
def test_checkpoints_hold_parameters_only(pe):
    # RoPE tables and ALiBi slopes are buffers that follow .to(device) but stay out of state_dict.
    model = make(pe, heads=2)
    assert set(model.state_dict()) == {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_forward_builds_its_tensors_on_the_input_device(pe):
    # On the meta device any tensor made on the CPU inside forward would raise a device mismatch.
    with torch.device("meta"):
        model = make(pe, heads=2)
        x = torch.empty(3, 17, model.cfg.content_dim)
    logits, attn = model(x, return_attn=True)
    assert logits.device.type == attn.device.type == "meta"
    assert attn.shape == (2, 3, 2, 17, 17)


def test_alibi_slopes_match_press_et_al():
    assert alibi_slopes(1).tolist() == [2**-8]
    assert alibi_slopes(2).tolist() == [2**-4, 2**-8]
    assert alibi_slopes(4).tolist() == [2**-2, 2**-4, 2**-6, 2**-8]
    assert torch.allclose(alibi_slopes(8), torch.tensor([2 ** (-(h + 1)) for h in range(8)]))
    # non-power of two: 4 from the closest power, then every other slope of the 8-head set
    assert torch.allclose(alibi_slopes(6), torch.tensor([2**-2, 2**-4, 2**-6, 2**-8, 2**-1, 2**-3]))


def test_mlp_variants_follow_their_formulas():
    torch.manual_seed(0)
    ref = make("rope", mlp_variant="reference").layers[0].feed_forward
    glu = make("rope", mlp_variant="swiglu").layers[0].feed_forward
    glu.load_state_dict(ref.state_dict())
    x = torch.randn(3, 64)
    a, b = ref.w1(x), ref.w2(x)
    silu = lambda z: z / (1 + torch.exp(-z))  # noqa: E731
    torch.testing.assert_close(ref(x), ref.w3(silu(a * b)))
    torch.testing.assert_close(glu(x), ref.w3(silu(a) * b))
    assert not torch.allclose(ref(x), glu(x))


def test_rms_norm_off_means_no_norm_parameters():
    model = make("rope", rms_norm=False)
    assert not any("norm" in k for k in model.state_dict())
    assert model.num_params() == 51_904 - 5 * 64


def test_rmsnorm_formula():
    model = make("rope")
    norm = model.norm
    x = torch.randn(5, 64)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(norm(x), expected)


@pytest.mark.parametrize("field, value, message", [
    ("pe", "sinusoidal", "pe='sinusoidal' is not a known position encoding; expected one of: ape, rope, alibi, hybrid"),
    ("rope_impl", "fancy", "rope_impl='fancy'"),
    ("mlp_variant", "gelu", "mlp_variant='gelu'"),
    ("n_heads", 0, "n_heads=0"),
    ("n_heads", True, "n_heads=True must be a positive integer"),
    ("n_layers", 0, "n_layers=0"),
    ("content_dim", -1, "content_dim=-1"),
    ("rope_theta", -1.0, "rope_theta=-1.0 must be a positive number"),
    ("norm_eps", 0.0, "norm_eps=0.0"),
])
def test_bad_config_names_the_field(field, value, message):
    kw = {"content_dim": 64, "n_labels": 32, field: value}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        DecoderConfig(**kw)


def test_width_not_divisible_by_heads_suggests_a_content_dim():
    with pytest.raises(ValueError, match=r"n_heads=2 does not divide the model width 129 .*content_dim=65"):
        DecoderConfig(content_dim=64, n_labels=32, pe="ape", n_heads=2)


def test_rope_needs_an_even_head_dim():
    with pytest.raises(ValueError, match="pe='rope' applies RoPE.*head_dim=3"):
        DecoderConfig(content_dim=6, n_labels=4, n_heads=2)
    DecoderConfig(content_dim=6, n_labels=4, n_heads=2, pe="alibi")  # no pairing, no constraint


def test_initialisation_scales():
    model = make("ape", heads=2)
    wq = model.layers[0].attention.wq.weight
    assert abs(wq.std().item() - 0.02) < 0.002
    w1 = model.layers[0].feed_forward.w1.weight  # PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert w1.abs().max() <= 1 / math.sqrt(128) + 1e-6
    assert w1.std().item() > 0.04


@pytest.mark.parametrize("pe", PE_KINDS)
@pytest.mark.parametrize("heads", [1, 2])
def test_last_position_fast_path_equals_full_forward(pe, heads):
    # The training forward computes only the last query in the last layer; the attention-map
    # forward computes every position. Both must give the same logits.
    model = make(pe, heads)
    x, off = inputs(model)
    fast = model(x, off)
    full, _ = model(x, off, return_attn=True)
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-5)


def _reference_forward(model, content, offsets):
    """The decoder written out as in protocol §2.1-2.5, one formula per line and no fast paths:
    h = x + Attn(w_a * rms(x)); out = h + MLP(w_m * rms(h)); logits = W_out (w * rms(x_last))."""
    cfg = model.cfg
    S, T, _ = content.shape
    H, hd = cfg.n_heads, cfg.head_dim

    def rms(x, w):
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + cfg.norm_eps) * w

    x = model.embed(content, offsets)
    mask = model._mask(T, x.device)
    maps = []
    for layer in model.layers:
        a, f = layer.attention, layer.feed_forward
        n = rms(x, layer.attention_norm.weight)
        q, k, v = ((n @ lin.weight.T).view(S, T, H, hd).transpose(1, 2)
                   for lin in (a.wq, a.wk, a.wv))
        if cfg.uses_rope:
            cos, sin = model.rope_cos[:T], model.rope_sin[:T]
            q = q * cos + torch.cat([-q[..., 1::2], q[..., 0::2]], -1) * sin  # reference pairing
            k = k * cos + torch.cat([-k[..., 1::2], k[..., 0::2]], -1) * sin
        probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd) + mask, dim=-1)
        maps.append(probs)
        mix = (probs @ v).transpose(1, 2).reshape(S, T, H * hd)
        h = x + (mix @ a.wo.weight.T if a.wo is not None else mix)
        m = rms(h, layer.ffn_norm.weight)
        gate = (m @ f.w1.weight.T + f.w1.bias) * (m @ f.w2.weight.T + f.w2.bias)
        hidden = torch.nn.functional.silu(gate)  # the reference MLP variant
        x = h + hidden @ f.w3.weight.T + f.w3.bias
    return rms(x[:, -1], model.norm.weight) @ model.out.weight.T, torch.stack(maps)


@pytest.mark.parametrize("pe", PE_KINDS)
@pytest.mark.parametrize("heads", [1, 2])
def test_forward_and_gradients_equal_the_formulas(pe, heads):
    # The module folds each RMSNorm weight into the next projection and skips the last layer's
    # other queries; with random (not unit) norm weights, logits, attention maps and every
    # parameter's gradient must equal the plain formulas.
    model = make(pe, heads)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
    x, off = inputs(model)
    logits = model(x, off)
    grads = torch.autograd.grad(logits.square().sum(), list(model.parameters()))
    expected, expected_maps = _reference_forward(model, x, off)
    expected_grads = torch.autograd.grad(expected.square().sum(), list(model.parameters()))
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x, off, return_attn=True)[1], expected_maps,
                               atol=1e-6, rtol=1e-5)
    for (name, _), got, want in zip(model.named_parameters(), grads, expected_grads):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=name)
