"""Evaluation semantics with two hand-built oracles: a pure in-context copier and a pure
in-weights classifier must score exactly as the definitions of IC / IC2 / IW say."""

import torch

from mmicl.data.sequences import SequenceSpec, make_test_sets
from mmicl.data.worlds import make_world
from mmicl.analysis.evaluate import evaluate, mean_attention
from mmicl.models.decoder import Decoder, DecoderConfig

L = 32


class CopyFromContext(torch.nn.Module):
    """Outputs the label token shown next to the context item most similar to the query."""

    def __init__(self, world):
        super().__init__()
        self.labels = world.label_vectors

    def forward(self, x, pos_offsets=None):
        items, label_tokens, query = x[:, 0:-1:2], x[:, 1::2], x[:, -1]
        nearest = (items @ query.unsqueeze(-1)).squeeze(-1).argmax(1)
        shown = label_tokens[torch.arange(len(x)), nearest]
        return shown @ self.labels.T * 100


class InWeights(torch.nn.Module):
    """Knows every training prototype and its label; ignores the context."""

    def __init__(self, world):
        super().__init__()
        self.means, self.class_labels = world.class_means, world.class_labels

    def forward(self, x, pos_offsets=None):
        cls = (x[:, -1] @ self.means.T).argmax(1)
        return torch.nn.functional.one_hot(self.class_labels[cls], L).float() * 100


def _sets():
    world = make_world(0, 512, L, 64)
    return world, make_test_sets(world, SequenceSpec(B=4, eps=0.1), 400, seed=7)


def test_copy_oracle_solves_icl_and_swapped_labels_but_not_iw():
    world, sets = _sets()
    acc = {k: v["accuracy"] for k, v in evaluate(CopyFromContext(world), sets, L).items()}
    assert acc["IC"] > 0.97 and acc["IC2"] > 0.97 and acc["Test"] > 0.97
    # IW: i.i.d. context of 8 draws from 512 classes; the copied label is right only by chance
    assert acc["IW"] < 0.3


def test_in_weights_oracle_solves_iw_but_answers_the_true_label_on_swapped_contexts():
    world, sets = _sets()
    acc = {k: v["accuracy"] for k, v in evaluate(InWeights(world), sets, L).items()}
    assert acc["IW"] > 0.97 and acc["Test"] > 0.97
    assert acc["IC2"] < 0.03          # it answers y, the set expects y + 1
    assert acc["IC"] < 0.15           # novel classes: near-uniform over labels


def test_mean_attention_table():
    world, sets = _sets()
    torch.manual_seed(0)
    model = Decoder(DecoderConfig(content_dim=64, n_labels=L, pe="rope", n_heads=2))
    table = mean_attention(model, sets["IC"], 50)
    assert len(table) == 2 * 2 * 17 * 17
    assert set(table.layer) == {1, 2}
    sums = table.groupby(["layer", "head", "query"]).weight.sum()
    assert ((sums - 1).abs() < 1e-5).all()
    assert (table[table.key > table["query"]].weight == 0).all()
