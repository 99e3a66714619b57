"""Stage-2 model pieces: projector, slot insertion, freezing, CKA."""

import pytest
import torch

from mmicl.analysis.alignment import linear_cka
from mmicl.models.decoder import Decoder, DecoderConfig
from mmicl.models.multimodal import MultimodalConfig, MultimodalDecoder, Projector

N, D1, D2 = 4, 16, 8


def make(projector="small", pe="rope"):
    torch.manual_seed(0)
    dec = DecoderConfig(content_dim=D1 if pe == "rope" else D1 - 1, n_labels=32, pe=pe)
    return MultimodalDecoder(MultimodalConfig(decoder=dec, m2_dim=D2, projector=projector))


def test_projector_shapes_and_no_bias():
    small, large = Projector(D2, D1, 2), Projector(D2, D1, 3)
    assert [tuple(lin.weight.shape) for lin in small.linears] == [(D1, D2), (D1, D1)]
    assert len(large.linears) == 3
    assert all(lin.bias is None for lin in large.linears)
    assert torch.equal(small(torch.zeros(3, D2)), torch.zeros(3, D1))
    z = torch.randn(5, D2)
    w1, w2 = small.linears
    torch.testing.assert_close(small(z), torch.nn.functional.gelu(z @ w1.weight.T) @ w2.weight.T)


def test_projected_m2_fills_exactly_the_m2_slots():
    model = make()
    inputs = torch.randn(2, 3 * N + 2, D1)
    inputs[:, 1::3] = 0.0
    m2 = torch.randn(2, N + 1, D2)
    content = model.combine(inputs, m2)
    slots = [3 * i + 1 for i in range(N)] + [3 * N + 1]
    torch.testing.assert_close(content[:, slots], model.projector(m2))
    others = [t for t in range(3 * N + 2) if t not in slots]
    assert torch.equal(content[:, others], inputs[:, others])


def test_stage1_state_dict_loads_into_the_decoder():
    model = make()
    torch.manual_seed(1)
    stage1 = Decoder(model.cfg.decoder)
    model.decoder.load_state_dict(stage1.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.decoder.parameters(), stage1.parameters()))


def test_authors_freeze_keeps_final_norm_and_head_trainable():
    model = make()
    model.freeze_decoder()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"decoder.norm.weight", "decoder.out.weight", "projector.linears.0.weight",
                         "projector.linears.1.weight"}
    model = make()
    model.freeze_decoder(include_head=True)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        "projector.linears.0.weight", "projector.linears.1.weight"}


def test_linear_cka_properties():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(500, 6, generator=g)
    Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    assert linear_cka(X, X) == pytest.approx(1.0)
    assert linear_cka(X, 3.0 * X @ Q + 2.0) == pytest.approx(1.0)  # orthogonal, scale, shift
    assert linear_cka(X, torch.randn(500, 6, generator=g)) < 0.05
    # hand value: Y = first column of X only; CKA = ||X1^T X||^2 / (||X^T X|| ||X1^T X1||)
    Xc = X - X.mean(0)
    Y = Xc[:, :1]
    expected = (Y.T @ Xc).norm() ** 2 / ((Xc.T @ Xc).norm() * (Y.T @ Y).norm())
    assert linear_cka(X, Y) == pytest.approx(expected.item(), rel=1e-6)


def test_bad_projector_is_named():
    dec = DecoderConfig(content_dim=D1, n_labels=32)
    with pytest.raises(ValueError, match="projector='huge'.*small, large"):
        MultimodalConfig(decoder=dec, m2_dim=D2, projector="huge")
