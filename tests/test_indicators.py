"""Progress measures: vectorised == slow loop, hand-computed planted heads, the TLA truncation,
chunking invariance on a real decoder, CLA, the tidy table and position errors."""

import pytest
import torch

from mmicl.data.multimodal import MultimodalSpec, generate_multimodal
from mmicl.data.sequences import SequenceSpec, generate_sequences
from mmicl.data.worlds import make_multimodal_world, make_world
from mmicl.analysis.indicators import (
    INDICATORS, copy_from_context_rate, head_scores, indicator_table, indicators_loop,
    model_indicators,
)
from mmicl.analysis.ours import DecoderAdapter, sequence_positions
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.models.multimodal import MultimodalConfig, MultimodalDecoder


def T_of(kind, N):
    return 2 * N + 1 if kind == "unimodal" else 3 * N + 2


def pos(kind, N, S):
    return sequence_positions(kind, N, S)


def planted_attention(n_layers, S, H, T, gen):
    """Random positive scores, causal-masked, rows normalised: a valid attention tensor."""
    scores = torch.rand(n_layers, S, H, T, T, generator=gen, dtype=torch.float64) + 0.01
    scores = scores * torch.ones(T, T, dtype=torch.float64).tril()
    return scores / scores.sum(-1, keepdim=True)


def labels_with_edge_cases(S, N, gen):
    """Random labels from 3 values (partial matches) plus one all-match and one no-match row."""
    labels = torch.randint(0, 3, (S, N + 1), generator=gen)
    labels[0] = 1  # every context pair matches the query
    labels[1, :N], labels[1, N] = 0, 2  # no context pair matches
    return labels


def assert_scores_close(got, want, atol=1e-6):
    assert list(got) == list(want)
    for name in want:
        torch.testing.assert_close(got[name].double().cpu(), want[name].double().cpu(),
                                   atol=atol, rtol=0, msg=name)


def put_last_row(attn, s, weights):
    """Overwrite the target row (T-1) of sequence s in every layer and head."""
    attn[:, s, :, -1, :] = 0.0
    for position, w in weights.items():
        attn[:, s, :, -1, position] = w


# --- 1. vectorised == loop --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["unimodal", "multimodal"])
@pytest.mark.parametrize("N", [8, 4])
@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("n_heads", [1, 2, 4])
def test_vectorised_equals_loop_on_planted_attention(kind, N, n_layers, n_heads, gen):
    attn = planted_attention(n_layers, 6, n_heads, T_of(kind, N), gen)
    labels = labels_with_edge_cases(6, N, gen)
    fast = head_scores(attn, labels, pos(kind, N, 6))
    assert all(v.shape == (n_layers, n_heads) for v in fast.values())
    assert_scores_close(fast, indicators_loop(attn, labels, kind))
    # float32 input (what the model returns) gives the same numbers
    assert_scores_close(head_scores(attn.float(), labels, pos(kind, N, 6)), fast)


def test_item_positions_select_the_item_indicators(gen):
    uni = head_scores(planted_attention(1, 2, 1, 9, gen), torch.zeros(2, 5, dtype=torch.long),
                      pos("unimodal", 4, 2))
    multi = head_scores(planted_attention(1, 2, 1, 14, gen), torch.zeros(2, 5, dtype=torch.long),
                        pos("multimodal", 4, 2))
    assert "tiia" in uni and not {"tiia_m1", "tiia_m2"} & set(uni)
    assert {"tiia_m1", "tiia_m2"} <= set(multi) and "tiia" not in multi
    assert set(uni) | set(multi) == set(INDICATORS)
    assert list(uni) == [n for n in INDICATORS if n in uni]  # INDICATORS order


# --- 2. hand-computed planted heads -----------------------------------------------------------


def test_perfect_previous_token_head():
    T = 9  # unimodal, N = 4
    attn = torch.zeros(1, 2, 1, T, T)
    attn[..., 0, 0] = 1.0
    for t in range(1, T):
        attn[..., t, t - 1] = 1.0
    labels = torch.tensor([[0, 1, 2, 3, 0], [5, 5, 5, 5, 6]])
    scores = head_scores(attn, labels, pos("unimodal", 4, 2))
    assert scores["prev_token_1"].item() == 1.0
    assert scores["prev_token_2"].item() == 0.0
    # the last row (8) attends to position 7 = lab(3): every label token gets all of TLA
    assert scores["tla"].item() == 1.0
    # tla_ref reads only labels j < 8 // 3 = 2, i.e. positions 1 and 3
    assert scores["tla_ref"].item() == 0.0
    # seq 0: M = {0} (label pos 1, weight 0), U = {1, 2, 3} (pos 3, 5, 7: mean 1/3);
    # seq 1: M empty (mean 0), U = all four pairs (mean 1/4)
    assert scores["tila"].item() == 0.0
    assert scores["induction_strength"].item() == pytest.approx(((0 - 1 / 3) + (0 - 1 / 4)) / 2)


def test_perfect_offset_two_head():
    T = 8  # multimodal, N = 2
    attn = torch.zeros(1, 1, 1, T, T)
    attn[..., 0, 0] = attn[..., 1, 0] = 1.0  # rows 0 and 1 cannot look back two tokens
    for t in range(2, T):
        attn[..., t, t - 2] = 1.0
    scores = head_scores(attn, torch.tensor([[3, 4, 3]]), pos("multimodal", 2, 1))
    assert scores["prev_token_1"].item() == pytest.approx(1 / (T - 1))  # only row 1 hits t-1
    assert scores["prev_token_2"].item() == 1.0


def test_perfect_induction_head_unimodal():
    # unimodal N = 4: labels at 1, 3, 5, 7; items at 0, 2, 4, 6; query at 8
    gen = torch.Generator().manual_seed(0)
    attn = planted_attention(2, 2, 3, 9, gen).float()
    # seq 0: M = {0, 2} -> half the target row on lab(0) = 1 and lab(2) = 5
    labels = torch.tensor([[5, 7, 5, 9, 5], [1, 2, 3, 4, 6]])
    put_last_row(attn, 0, {1: 0.5, 5: 0.5})
    # seq 1: no match; everything on lab(1) = 3
    put_last_row(attn, 1, {3: 1.0})
    scores = head_scores(attn, labels, pos("unimodal", 4, 2))
    per_seq = {  # (seq 0, seq 1), computed by hand from the definitions
        "tila": (0.5, 0.0),
        "induction_strength": (0.5 - 0.0, 0.0 - (0 + 1 + 0 + 0) / 4),
        "tiia": (0.0, 0.0),
        "tla": (1.0, 1.0),
        "tla_ref": (0.5, 1.0),  # labels j < 8 // 3 = 2: positions 1 and 3
    }
    for name, values in per_seq.items():
        expected = torch.full((2, 3), sum(values) / 2, dtype=torch.float64)
        torch.testing.assert_close(scores[name], expected, atol=1e-7, rtol=0, msg=name)


def test_induction_head_multimodal_positions():
    # multimodal N = 2: m1 0,3; m2 1,4; labels 2,5; M1 query 6; target row 7
    attn = torch.zeros(1, 1, 1, 8, 8)
    put_last_row(attn, 0, {1: 0.5, 2: 0.25, 5: 0.25})
    scores = head_scores(attn, torch.tensor([[3, 4, 3]]), pos("multimodal", 2, 1))  # M={0}
    expected = {"tila": 0.25, "induction_strength": 0.0, "tiia_m1": 0.0, "tiia_m2": 0.5,
                "tla": 0.5, "tla_ref": 0.5}
    assert {k: scores[k].item() for k in expected} == expected


# --- 3. the reference's TLA truncation --------------------------------------------------------


def test_tla_ref_sums_first_five_of_eight_unimodal_labels():
    attn = torch.zeros(2, 3, 2, 17, 17)
    for s in range(3):
        put_last_row(attn, s, {2 * i + 1: 1 / 8 for i in range(8)})
    scores = head_scores(attn, torch.zeros(3, 9, dtype=torch.long), pos("unimodal", 8, 3))
    torch.testing.assert_close(scores["tla"], torch.ones(2, 2, dtype=torch.float64))
    torch.testing.assert_close(scores["tla_ref"], torch.full((2, 2), 5 / 8, dtype=torch.float64))
    loop = indicators_loop(attn, torch.zeros(3, 9, dtype=torch.long), "unimodal")
    assert loop["tla_ref"][0, 0].item() == pytest.approx(5 / 8)


def test_tla_ref_equals_tla_for_multimodal(gen):
    attn = planted_attention(1, 4, 2, 26, gen)
    scores = head_scores(attn, labels_with_edge_cases(4, 8, gen), pos("multimodal", 8, 4))
    torch.testing.assert_close(scores["tla_ref"], scores["tla"])


# --- 4. a real decoder ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unimodal_batch():
    world = make_world(0, 64, 32, 16)
    spec = SequenceSpec(N=8, B=2, p_bursty=0.5, p_novel=0.5)
    return generate_sequences(world, spec, 50, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("n_heads", [1, 2])
def test_real_decoder_vectorised_loop_and_chunking(unimodal_batch, n_heads):
    batch = unimodal_batch
    labels = batch.seq_labels
    # the batch covers both edge cases of the empty-set rule
    n_match = (labels[:, :8] == labels[:, 8:]).sum(1)
    assert (n_match == 0).any() and (n_match > 0).any()
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(content_dim=16, n_labels=32, pe="rope", n_heads=n_heads))
    with torch.no_grad():
        logits, attn = model(batch.inputs, batch.pos_offsets, return_attn=True)
    assert attn.shape == (2, 50, n_heads, 17, 17)
    fast = head_scores(attn, labels, pos("unimodal", 8, 50))
    assert_scores_close(fast, indicators_loop(attn, labels, "unimodal"))

    model.train()
    small, cla_small = model_indicators(DecoderAdapter(model), batch, chunk=7)
    big, cla_big = model_indicators(DecoderAdapter(model), batch, chunk=1000)
    assert_scores_close(small, big)
    assert_scores_close(big, fast)
    assert cla_small == cla_big == copy_from_context_rate(logits, labels)
    assert model.training  # left in the mode it was given


def test_model_indicators_multimodal_batch():
    world = make_multimodal_world(0, 64, 32, 16, 64, 32, 8)
    batch = generate_multimodal(world, MultimodalSpec(N=4, B=2, p_bursty=0.5), 12,
                                torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = MultimodalDecoder(MultimodalConfig(DecoderConfig(16, 32, n_heads=2), m2_dim=8))
    with torch.no_grad():
        logits, attn = model(batch.inputs, batch.m2_inputs, batch.pos_offsets, return_attn=True)
    scores, cla = model_indicators(DecoderAdapter(model), batch, chunk=5)
    assert_scores_close(scores, indicators_loop(attn, batch.seq_labels, "multimodal"))
    assert cla == copy_from_context_rate(logits, batch.seq_labels)


# --- 5. CLA -----------------------------------------------------------------------------------


def test_copy_from_context_rate_by_hand():
    seq_labels = torch.tensor([[1, 2, 3, 9],    # predicts 2: in context
                               [4, 4, 4, 4],    # predicts 5: not in context
                               [0, 1, 2, 7]])   # predicts 7: the query label only, not counted
    predicted = torch.tensor([2, 5, 7])
    assert copy_from_context_rate(predicted, seq_labels) == pytest.approx(1 / 3)
    logits = torch.nn.functional.one_hot(predicted, 10).float()
    assert copy_from_context_rate(logits, seq_labels) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="predictions"):
        copy_from_context_rate(torch.zeros(2, dtype=torch.long), seq_labels)


# --- 6. tidy table ----------------------------------------------------------------------------


def test_indicator_table(gen):
    scores = head_scores(planted_attention(2, 3, 2, 9, gen),
                         labels_with_edge_cases(3, 4, gen), pos("unimodal", 4, 3))
    table = indicator_table(scores, cla=0.25, run="r1", seed=3)
    assert list(table.columns) == ["layer", "head", "indicator", "value", "run", "seed"]
    assert len(table) == len(scores) * 2 * 2 + 1 and len(scores) == 7
    heads = table[table.indicator != "cla"]
    assert set(heads.layer) == {1, 2} and set(heads["head"]) == {0, 1}
    row = table[(table.indicator == "tla") & (table.layer == 2) & (table["head"] == 1)]
    assert row.value.item() == pytest.approx(scores["tla"][1, 1].item())
    cla = table[table.indicator == "cla"]
    assert (cla.layer.item(), cla["head"].item(), cla.value.item()) == (0, -1, 0.25)
    assert (table.run == "r1").all() and (table.seed == 3).all()
    assert "cla" not in set(indicator_table(scores).indicator)


# --- 7. positions and input errors -----------------------------------------------------------


def test_sequence_positions():
    uni, multi = pos("unimodal", 3, 2), pos("multimodal", 3, 2)
    assert uni.labels[1].tolist() == [1, 3, 5] and uni.items["item"][0].tolist() == [0, 2, 4]
    assert uni.query.tolist() == [6, 6]
    assert multi.labels[0].tolist() == [2, 5, 8] and multi.query.tolist() == [10, 10]
    assert multi.items["m1"][0].tolist() == [0, 3, 6]
    assert multi.items["m2"][0].tolist() == [1, 4, 7]
    assert multi.queries["m1"].tolist() == [9, 9]


def test_position_errors_name_the_field():
    with pytest.raises(ValueError, match=r"kind='bimodal'.*unimodal or multimodal"):
        pos("bimodal", 8, 1)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match=r"N="):
            pos("unimodal", bad, 1)


def test_shape_errors(gen):
    attn = planted_attention(1, 2, 1, 9, gen)
    with pytest.raises(ValueError, match="point past the 9 tokens"):
        head_scores(attn, torch.zeros(2, 9, dtype=torch.long), pos("unimodal", 8, 2))
    with pytest.raises(ValueError, match="seq_labels"):
        head_scores(attn, torch.zeros(2, 4, dtype=torch.long), pos("unimodal", 4, 2))
    with pytest.raises(ValueError, match="n_layers, S, n_heads"):
        head_scores(attn[0], torch.zeros(2, 5, dtype=torch.long), pos("unimodal", 4, 2))
