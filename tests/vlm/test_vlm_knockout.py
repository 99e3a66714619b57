"""Table 3 bookkeeping: Wilson intervals, the random control, accuracy / CLA / pairing on a
scripted adapter, and hook hygiene on the tiny model."""

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from mmicl.analysis.adapter import ModelOutput
from mmicl.vlm.knockout import (Z95, authors_json, condition_heads, knockout_table,
                                random_heads, wilson)
from mmicl.vlm.prompt import Prompt

VOCAB = {"dax": [1], " dax": [2], "blicket": [3], " blicket": [4]}
JUNK = 9


class Tokenizer:
    def encode(self, text, add_special_tokens=False):
        return VOCAB[text]


def prompt(i: int) -> Prompt:
    return Prompt(torch.tensor([[i]]), None, None, "", "dax", ("dax", "blicket", "dax"))


class ScriptedAdapter:
    """Predicts from a script keyed by the set of ablated heads and the example id."""

    n_layers, n_heads = 4, 4

    def __init__(self, script, oom=()):
        self.script, self.oom, self.active = script, set(oom), frozenset()

    @contextmanager
    def ablate_heads(self, heads, mode="zero"):
        self.active = frozenset(heads)
        yield
        self.active = frozenset()

    def run(self, batch, attention=False):
        i = int(batch["input_ids"][0, 0])
        if (self.active, i) in self.oom:
            raise torch.OutOfMemoryError("simulated")
        logits = torch.zeros(1, 10)
        logits[0, self.script[self.active][i]] = 1.0
        return ModelOutput(logits)


def test_wilson_is_the_score_interval():
    for k, n in ((37, 50), (3, 12), (49, 50)):
        p = k / n  # roots of (p - x)^2 = z^2 x (1 - x) / n, solved independently
        c = Z95 ** 2 / n
        roots = sorted(np.roots([1 + c, -(2 * p + c), p * p]).real)
        assert wilson(k, n) == pytest.approx(tuple(roots), abs=1e-12)
    assert wilson(0, 50)[0] == 0.0 and wilson(50, 50)[1] == 1.0
    lo, hi = wilson(37, 50)
    assert 0.11 < (hi - lo) / 2 < 0.14  # "50 examples make +-0.14" at worst (p = 0.5)
    assert (lambda w: (w[1] - w[0]) / 2)(wilson(25, 50)) == pytest.approx(0.133, abs=2e-3)
    assert all(np.isnan(wilson(0, 0)))


def test_random_heads_avoid_the_rankings():
    exclude = [(i, h) for i in range(4) for h in range(4) if (i + h) % 3]
    heads = random_heads(4, 4, exclude, n=5, seed=1)
    assert heads == random_heads(4, 4, exclude, n=5, seed=1) == sorted(heads)
    assert len(set(heads)) == 5 and not set(heads) & set(exclude)
    assert random_heads(36, 16, [], 5, seed=0) != random_heads(36, 16, [], 5, seed=1)
    with pytest.raises(ValueError, match="only 6 heads .* cannot draw 7"):
        random_heads(4, 4, exclude, n=7)


def test_condition_heads_checks_grid_and_counts():
    top = {"ph": [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2)], "ih": [(3, 3), (3, 2), (3, 1), (3, 0),
                                                                  (2, 3)]}
    heads = condition_heads(top, top["ph"] + top["ih"], (4, 4), k=5, seed=0)
    assert heads["both"] == top["ih"] + top["ph"]  # the reference's order
    assert not set(heads["random"]) & set(top["ph"] + top["ih"])
    with pytest.raises(ValueError, match="lists 3 PH heads"):
        condition_heads({"ph": top["ph"][:3], "ih": top["ih"]}, [], (4, 4))
    with pytest.raises(ValueError, match=r"\(layer=3, head=3\) is outside"):
        condition_heads(top, [], (3, 4))


def test_table_counts_accuracy_cla_changes_and_pairing():
    ph, ih = [(0, 0)], [(1, 1)]
    rnd = [(2, 2)]
    # 10 examples; target "dax" = 1; CLA set = {1, 2, 3, 4}
    script = {frozenset(): [1, 1, 1, 1, 1, 1, 1, 3, 4, JUNK],  # acc 7/10, cla 9/10
              frozenset(ph): [1, 1, 1, 1, 1, JUNK, JUNK, 3, 4, JUNK],  # acc 5, cla 7, 2 changed
              frozenset(ih): [3, 3, 3, 1, 1, 1, 1, 3, 4, JUNK],  # acc 4, cla 9, 3 changed
              frozenset(ih + ph): [JUNK] * 10,  # acc 0, cla 0
              frozenset(rnd): [1, 1, 1, 1, 1, 1, 1, 3, 4, 2]}  # acc 7, cla 10, 1 changed
    heads = {"baseline": [], "ph": ph, "ih": ih, "both": ih + ph, "random": rnd}
    prompts = [prompt(i) for i in range(10)]
    summary, per_example = knockout_table(ScriptedAdapter(script), prompts, Tokenizer(), heads)
    s = summary.set_index("condition")
    assert s.n_correct.to_dict() == {"baseline": 7, "ph": 5, "ih": 4, "both": 0, "random": 7}
    assert s.n_cla.to_dict() == {"baseline": 9, "ph": 7, "ih": 9, "both": 0, "random": 10}
    assert s.n_changed.to_dict() == {"baseline": 0, "ph": 2, "ih": 3, "both": 9, "random": 1}
    assert s.delta_accuracy["ih"] == pytest.approx(-0.3)
    assert (s.accuracy_lo["ph"], s.accuracy_hi["ph"]) == wilson(5, 10)
    assert s.n_eval.eq(10).all() and s.paper_accuracy["both"] == 0.56
    assert len(per_example) == 50 and per_example.correct.sum() == 23
    report = authors_json(summary, "ih", heads)
    assert report == {"knockout_type": "ih", "heads": [{"layer": 1, "head": 1}],
                      "baseline": {"accuracy": 0.7, "cla": 0.9},
                      "knockout": {"accuracy": 0.4, "cla": 0.9},
                      "diff": {"accuracy": pytest.approx(-0.3), "cla": 0.0}, "num_eval": 10}

    # an example that ran out of memory in one condition leaves every condition
    adapter = ScriptedAdapter(script, oom={(frozenset(ph), 9)})
    summary, _ = knockout_table(adapter, prompts, Tokenizer(), heads)
    s = summary.set_index("condition")
    assert s.n_eval.eq(9).all() and s.n_skipped.eq(1).all()
    assert s.n_cla["baseline"] == 9 and s.cla["baseline"] == 1.0


def test_real_knockout_leaves_no_hooks(vlm, examples):
    from mmicl.vlm.prompt import build_prompt

    adapter, proc = vlm
    prompts = [build_prompt(proc, ex) for ex in examples[:3]]
    before = [adapter.run(p.inputs()).logits for p in prompts]
    heads = {"baseline": [], "ph": [(19, 11), (1, 1)], "both": [(31, 15), (19, 11), (1, 1)]}
    summary, per_example = knockout_table(adapter, prompts, proc.tokenizer, heads)
    after = [adapter.run(p.inputs()).logits for p in prompts]
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    base = per_example[per_example.condition == "baseline"].prediction.tolist()
    assert base == [int(b[0].argmax()) for b in before]
    assert summary.n_eval.eq(3).all()
