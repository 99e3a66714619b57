"""The model adapter of our decoders: logits and attention [layer, batch, head, query, key],
head ablation by hooks (each reading against an independent implementation), token edits, and
the interventions and alignment that run through it."""

import math

import pytest
import torch

from mmicl.analysis.adapter import ModelAdapter
from mmicl.analysis.alignment import modality_alignment
from mmicl.analysis.interventions import run_interventions, zeroing_cases
from mmicl.analysis.ours import DecoderAdapter
from mmicl.data.multimodal import MultimodalBatch
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.models.multimodal import MultimodalConfig, MultimodalDecoder

CONTENT_DIM = {"ape": 15, "rope": 16, "alibi": 16, "hybrid": 14}


def make(pe="rope", heads=1, seed=0):
    torch.manual_seed(seed)
    return Decoder(DecoderConfig(content_dim=CONTENT_DIM[pe], n_labels=32, n_heads=heads, pe=pe))


def batch_for(model, S=6, N=8, seed=1):
    from mmicl.data.sequences import Batch
    g = torch.Generator().manual_seed(seed)
    T = 2 * N + 1
    labels = torch.randint(0, 4, (S, N + 1), generator=g)
    return Batch(inputs=torch.randn(S, T, model.cfg.content_dim, generator=g),
                 targets=labels[:, -1], seq_labels=labels, query_classes=labels[:, -1],
                 is_novel=torch.zeros(S, dtype=torch.bool), is_bursty=torch.ones(S, dtype=torch.bool),
                 pos_offsets=torch.randint(0, 2 * 32 - 2 * N + 1, (S,), generator=g),
                 context_classes=labels[:, :N])


def test_our_decoder_satisfies_the_protocol_and_positions_are_the_layout():
    model = make()
    adapter = DecoderAdapter(model)
    assert isinstance(adapter, ModelAdapter)
    b = batch_for(model)
    out = adapter.run(b, attention=True)
    assert out.logits.shape == (6, 32) and out.attention.shape == (2, 6, 1, 17, 17)
    torch.testing.assert_close(out.logits, adapter.run(b).logits, atol=1e-6, rtol=1e-5)
    pos = adapter.positions(b)
    assert pos.labels[0].tolist() == [2 * i + 1 for i in range(8)]
    assert pos.items["item"][3].tolist() == [2 * i for i in range(8)]
    assert pos.query.tolist() == [16] * 6


@pytest.mark.parametrize("pe, heads", [("rope", 1), ("rope", 2), ("ape", 1), ("alibi", 2)])
def test_zero_knockout_equals_zeroed_weights_and_is_removed_on_exit(pe, heads):
    # The hook zeroes the head's value mix before Wo; independently: zero Wv (one head, no Wo)
    # or the head's input columns of Wo.
    model = make(pe, heads)
    adapter = DecoderAdapter(model)
    b = batch_for(model)
    base = adapter.run(b).logits
    with adapter.ablate_heads([(0, 0)]):
        knocked = adapter.run(b, attention=True)
    assert torch.equal(adapter.run(b).logits, base)  # hooks gone
    hd = model.cfg.head_dim
    with torch.no_grad():
        if heads == 1:
            model.layers[0].attention.wv.weight.zero_()
        else:
            model.layers[0].attention.wo.weight[:, :hd] = 0.0
    torch.testing.assert_close(knocked.logits, adapter.run(b).logits, atol=1e-6, rtol=0)
    assert not torch.allclose(knocked.logits, base)
    # attention of the ablated layer itself is unchanged; the next layer's changes
    plain = DecoderAdapter(make(pe, heads)).run(b, attention=True).attention
    torch.testing.assert_close(knocked.attention[0], plain[0])


def test_uniform_reading_gives_the_uniform_causal_pattern():
    model = make("rope", 2)
    adapter = DecoderAdapter(model)
    b = batch_for(model)
    with adapter.ablate_heads([(1, 1)], mode="uniform"):
        attn = adapter.run(b, attention=True).attention
    T = 17
    expected = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    torch.testing.assert_close(attn[1, :, 1], expected.expand(6, T, T))
    assert not torch.allclose(attn[1, :, 0], expected.expand(6, T, T))  # other head untouched
    with adapter.ablate_heads([(1, 0)], mode="uniform"):  # last-query fast path too
        fast = adapter.run(b).logits
    with adapter.ablate_heads([(1, 0)], mode="uniform"):
        full = adapter.run(b, attention=True).logits
    torch.testing.assert_close(fast, full, atol=1e-6, rtol=1e-5)


def test_mean_reading_replaces_a_head_by_its_mean_over_the_reference():
    model = make("rope", 1)
    adapter = DecoderAdapter(model)
    b = batch_for(model)
    # independent: capture the head's value mix over the batch, feed its mean by a hand hook
    mixes = []
    h = model.layers[0].attention.hook_heads.register_forward_hook(
        lambda m, i, o: mixes.append(o))
    adapter.run(b, attention=True)
    h.remove()
    mean = mixes[0].mean(0, keepdim=True)
    h = model.layers[0].attention.hook_heads.register_forward_hook(
        lambda m, i, o: mean.expand_as(o))
    expected = adapter.run(b).logits
    h.remove()
    with adapter.ablate_heads([(0, 0)], mode="mean", reference=b):
        got = adapter.run(b).logits
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="needs a reference batch"):
        with adapter.ablate_heads([(0, 0)], mode="mean"):
            pass


def test_bad_heads_and_modes_are_named():
    adapter = DecoderAdapter(make("rope", 2))
    with pytest.raises(ValueError, match=r"head \(layer=2, head=0\) is outside the model's 2 "
                                         r"layers x 2 heads"):
        with adapter.ablate_heads([(2, 0)]):
            pass
    with pytest.raises(ValueError, match="ablation mode 'random'"):
        with adapter.ablate_heads([(0, 0)], mode="random"):
            pass


def test_whole_token_edit_zeroes_the_position_columns_too():
    model = make("ape", 1)
    adapter = DecoderAdapter(model)
    b = batch_for(model)
    mask = torch.zeros(17, dtype=torch.bool)
    mask[[0, 2]] = True
    edited = {}
    with adapter.edit_tokens(mask):  # pre-hooks run in order: this one sees the edited input
        h = model.layers[0].register_forward_pre_hook(lambda m, a: edited.__setitem__("x", a[0]))
        adapter.run(b)
        h.remove()
    x = edited["x"]
    assert x[:, [0, 2]].abs().max() == 0  # position one-hot included
    assert (x[:, 1, :65].sum(-1) == 1).all()  # other tokens keep their position code


# ---------------------------------------------------------------------------------------------
# Stage 2: zeroing readings and alignment through the adapter


N, D1, D2 = 4, 16, 8


def mm_model(seed=0):
    torch.manual_seed(seed)
    dec = DecoderConfig(content_dim=D1, n_labels=32, pe="rope")
    return MultimodalDecoder(MultimodalConfig(decoder=dec, m2_dim=D2))


def mm_batch(S=5, seed=2):
    g = torch.Generator().manual_seed(seed)
    T = 3 * N + 2
    inputs = torch.randn(S, T, D1, generator=g)
    inputs[:, 1::3] = 0.0
    labels = torch.randint(0, 4, (S, N + 1), generator=g)
    return MultimodalBatch(inputs=inputs, m2_inputs=torch.randn(S, N + 1, D2, generator=g),
                           targets=labels[:, -1], seq_labels=labels, m1_classes=labels,
                           m2_classes=labels, is_novel=torch.ones(S, dtype=torch.bool),
                           is_bursty=torch.ones(S, dtype=torch.bool),
                           pos_offsets=torch.zeros(S, dtype=torch.long))


@pytest.mark.parametrize("reading, m1_zeroed, m2_zeroed", [
    ("items", [3 * i for i in range(N)] + [3 * N], list(range(N + 1))),
    ("tokens", [3 * i for i in range(N)] + [3 * N] + [3 * i + 2 for i in range(N)],
     list(range(N + 1))),
    ("query", [3 * N], [N]),
])
def test_zeroing_readings_edit_exactly_their_tokens(reading, m1_zeroed, m2_zeroed):
    adapter = DecoderAdapter(mm_model())
    b = mm_batch()
    cases = zeroing_cases(adapter, b, reading)
    edited, whole = cases["zero_m1"]
    assert whole is None
    changed = (edited.inputs != b.inputs).any(-1).any(0).nonzero().flatten().tolist()
    assert sorted(changed) == sorted(m1_zeroed)
    assert edited.inputs[:, m1_zeroed].abs().max() == 0
    m2 = cases["zero_m2"][0].m2_inputs  # (M2 has no label tokens: "tokens" = its items)
    assert m2[:, m2_zeroed].abs().max() == 0
    kept = [j for j in range(N + 1) if j not in m2_zeroed]
    assert torch.equal(m2[:, kept], b.m2_inputs[:, kept])


def test_mean_zeroing_uses_the_set_mean_and_whole_reading_a_token_mask():
    adapter = DecoderAdapter(mm_model())
    b = mm_batch()
    edited, _ = zeroing_cases(adapter, b, "mean")["zero_m1"]
    torch.testing.assert_close(edited.inputs[:, 0], b.inputs[:, 0].mean(0).expand(5, D1))
    torch.testing.assert_close(edited.inputs[:, 2], b.inputs[:, 2])  # a label: untouched
    _, whole = zeroing_cases(adapter, b, "whole")["zero_m2"]
    assert whole.nonzero().flatten().tolist() == [3 * i + 1 for i in range(N)] + [3 * N + 1]


def test_zeroing_every_input_gives_the_constant_prediction():
    """Known answer: with M1 tokens (incl. labels) and M2 zeroed, every sequence is the same
    input, so every sequence gets the same prediction."""
    adapter = DecoderAdapter(mm_model())
    b = mm_batch(S=7)
    edited, _ = zeroing_cases(adapter, b, "tokens")["zero_m1"]
    edited, _ = zeroing_cases(adapter, edited, "items")["zero_m2"]
    logits = adapter.run(edited).logits
    assert torch.allclose(logits, logits[:1].expand_as(logits))


def test_run_interventions_lists_every_reading():
    model = mm_model()
    adapter = DecoderAdapter(model)
    sets = {"IC": mm_batch()}
    table = run_interventions(adapter, sets, 32, ("IC",),
                              {"knockout": ["zero", "uniform", "mean"],
                               "zeroing": ["items", "tokens", "whole", "query", "mean"]})
    pairs = set(zip(table.intervention, table.reading))
    assert ("full", "none") in pairs
    for mode in ("zero", "uniform", "mean"):
        assert {("ph_knockout", mode), ("ih_knockout", mode)} <= pairs
    assert ("zero_m1", "tokens") in pairs and ("zero_m2", "tokens") in pairs
    assert len(table) == 1 + 6 + 2 * 5
    with pytest.raises(ValueError, match="zeroing reading 'all' is unknown"):
        run_interventions(adapter, sets, 32, ("IC",), {"zeroing": ["all"]})


def test_alignment_reads_the_projected_m2_and_paired_m1_tokens():
    model = mm_model()
    adapter = DecoderAdapter(model)
    b = mm_batch()
    got = modality_alignment(adapter, b)
    m2 = model.projector(b.m2_inputs[:, :N]).reshape(-1, D1)
    m1 = b.inputs[:, 0:3 * N:3].reshape(-1, D1)
    assert got["l2"] == pytest.approx((m2 - m1).norm(dim=-1).mean().item(), rel=1e-6)
    assert got["projected_norm"] == pytest.approx(m2.norm(dim=-1).mean().item(), rel=1e-6)
    assert 0.0 <= got["cka"] <= 1.0 and math.isfinite(got["cka"])
