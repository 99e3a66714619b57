"""PH / IH head scores: planted patterns, vectorised == per-head loop on real attentions, the
example averaging (IH filter, PH over scored examples), rankings and overlaps."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mmicl.analysis.adapter import ModelOutput
from mmicl.vlm.heads import (HeadScores, example_scores, overlap_table, rank_heads,
                             rankings_from_rows, read_top_heads, score_prompts, scores_loop,
                             tidy_rows, write_top_heads)
from mmicl.vlm.prompt import Prompt

RELEASED = json.loads((Path(__file__).parent / "data" / "released_top_heads.json").read_text())
T = 8
ANSWERS = torch.zeros(T, dtype=torch.bool)
ANSWERS[[2, 5]] = True


def causal_uniform(T: int) -> torch.Tensor:
    return torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]


def planted() -> torch.Tensor:
    """[L=2, S=1, H=3, T, T]: (0,0) a perfect previous-token head, (0,1) uniform, (0,2) all on
    token 0; layer 1: (1,0) last row all on the answers, (1,1) last row all on token 0,
    (1,2) uniform."""
    uniform = causal_uniform(T)
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    first = torch.zeros(T, T)
    first[:, 0] = 1
    induction = uniform.clone()
    induction[-1] = ANSWERS.float() / ANSWERS.sum()
    return torch.stack([torch.stack([prev, uniform, first]),
                        torch.stack([induction, first, uniform])])[:, None]


def test_planted_scores_exact_and_loop_agrees():
    attn = planted()
    ph, ih = example_scores(attn, ANSWERS[None], torch.tensor([T - 1]))
    uniform_ph = float(np.mean([1 / (t + 1) for t in range(1, T)]))
    induction_ph = uniform_ph - 1 / T / (T - 1)  # its last row moved off key T-2
    np.testing.assert_allclose(ph[:, 0].numpy(), [[1.0, uniform_ph, 1 / 7],
                                                  [induction_ph, 1 / 7, uniform_ph]], rtol=1e-6)
    # IH: mean over the 2 answer keys minus mean over the 6 others (the previous-token head's
    # last row sits on key 6, not an answer)
    np.testing.assert_allclose(ih[:, 0].numpy(), [[-1 / 6, 0.0, -1 / 6], [0.5, -1 / 6, 0.0]],
                               atol=1e-7)
    lph, lih = scores_loop([attn[i, 0] for i in range(2)], ANSWERS.tolist())
    np.testing.assert_allclose(ph[:, 0].numpy(), lph, rtol=1e-6)
    np.testing.assert_allclose(ih[:, 0].numpy(), lih, atol=1e-7)


def test_text_rows_and_no_answer():
    attn = planted()
    rows = torch.ones(T, dtype=torch.bool)
    rows[[1, 2, 3]] = False  # e.g. image patches
    ph, _ = example_scores(attn, ANSWERS[None], torch.tensor([T - 1]), rows[None])
    assert ph[0, 0, 0] == 1.0
    assert ph[0, 0, 2] == pytest.approx(0.0)  # (0,2) attends to token 0; rows 4..7 never to t-1
    lph, _ = scores_loop([attn[i, 0] for i in range(2)], ANSWERS.tolist(), rows.tolist())
    np.testing.assert_allclose(ph[:, 0].numpy(), lph, rtol=1e-6)
    _, ih = example_scores(attn, torch.zeros(1, T, dtype=torch.bool), torch.tensor([T - 1]))
    assert torch.equal(ih, torch.zeros_like(ih))  # no answer occurrence: 0, as the reference


def test_vectorised_equals_loop_on_real_attentions(vlm, examples):
    from mmicl.vlm.prompt import answer_mask, build_prompt

    adapter, proc = vlm
    prompt = build_prompt(proc, examples[3])
    attn = adapter.run(prompt.inputs(), attention=True).attention
    assert attn.shape == (36, 1, 16, prompt.length, prompt.length)
    mask = answer_mask(prompt, proc.tokenizer)
    layers = [attn[i, 0] for i in range(36)]
    for rows in (None, prompt.text_mask()):
        ph, ih = example_scores(attn, mask[None], torch.tensor([prompt.length - 1]),
                                None if rows is None else rows[None])
        lph, lih = scores_loop(layers, mask.tolist(), None if rows is None else rows.tolist())
        np.testing.assert_allclose(ph[:, 0].double().numpy(), lph, atol=1e-7, rtol=0)
        np.testing.assert_allclose(ih[:, 0].double().numpy(), lih, atol=1e-7, rtol=0)
    assert np.abs(lih).max() > 1e-5  # not trivially zero


class PlantedAdapter:
    """Returns the planted attention (scaled per example); raises OOM for some examples."""

    n_layers, n_heads = 2, 3

    def __init__(self, oom=()):
        self.oom, self.calls = set(oom), 0

    def run(self, batch, attention=False):
        i = self.calls
        self.calls += 1
        if i in self.oom:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return ModelOutput(torch.zeros(1, 5), planted())


class ToyTokenizer:
    def encode(self, text, add_special_tokens=False):
        return {"dax": [7], " dax": [8]}.get(text, [9])


def toy_prompt(answer_at=(2, 5)) -> Prompt:
    ids = torch.zeros(1, T, dtype=torch.long)
    ids[0, list(answer_at)] = 7
    return Prompt(ids, None, None, "", "dax", ("dax", "blicket"))


def test_example_averaging_filter_and_skips():
    prompts = [toy_prompt(), toy_prompt(answer_at=()), toy_prompt(), toy_prompt()]
    scores = score_prompts(PlantedAdapter(oom={2}), prompts, ToyTokenizer(),
                           indices=[10, 11, 12, 13])
    single_ph, single_ih = example_scores(planted(), ANSWERS[None], torch.tensor([T - 1]))
    # PH: mean over the 3 scored examples (all identical), not / 4 as the reference would
    np.testing.assert_allclose(scores.ph, single_ph[:, 0].double().numpy(), rtol=1e-6)
    assert (scores.n_examples, scores.n_scored, scores.n_ih) == (4, 3, 2)
    assert scores.ih_dropped == [11]  # no answer in the prompt -> ih.max() == 0 -> dropped
    assert scores.skipped[0]["index"] == 12 and "out of memory" in scores.skipped[0]["reason"]
    np.testing.assert_allclose(scores.ih, single_ih[:, 0].double().numpy(), atol=1e-7)
    with pytest.raises(ValueError, match="ph_rows='image'"):
        score_prompts(PlantedAdapter(), prompts, ToyTokenizer(), ph_rows="image")


def test_rank_tidy_and_json_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    scores = HeadScores(rng.random((36, 16)), rng.random((36, 16)) - 0.5, 16, 16, 12, [3], [])
    top = rank_heads(scores.ph, 20)
    flat = np.sort(scores.ph.ravel())[::-1]
    assert [h["score"] for h in top] == list(flat[:20])
    assert scores.ph[top[0]["layer"], top[0]["head"]] == scores.ph.max()
    df = tidy_rows(scores, "mllm", tiny=True)
    assert len(df) == 2 * 36 * 16 and df.tiny.all()
    for kind in ("ph", "ih"):
        sub = df[df.kind == kind]
        assert sorted(sub["rank"]) == list(range(1, 577))
        assert (sub.sort_values("rank").score.diff().dropna() <= 0).all()
    assert df[df.kind == "ih"].n_used.iloc[0] == 12 and df.n_ih_dropped.iloc[0] == 1
    path = write_top_heads(scores, tmp_path / "top_heads.json")
    data = json.loads(path.read_text())
    assert len(data["ph_heads"]) == len(data["ih_heads"]) == 20
    assert rankings_from_rows(df, "mllm") == {k: data[k] for k in ("ph_heads", "ih_heads")}
    heads = read_top_heads(path, k=5, grid=(36, 16))
    assert heads["ph"] == [(h["layer"], h["head"]) for h in top[:5]]


def test_read_top_heads_rejects_bad_files(tmp_path):
    path = tmp_path / "top.json"
    path.write_text(json.dumps({"ph_heads": [{"layer": 40, "head": 1, "score": 0.1}],
                                "ih_heads": []}))
    with pytest.raises(ValueError, match=rf"{path}: ph_heads: head \(layer=40, head=1\)"):
        read_top_heads(path, grid=(36, 16))
    path.write_text(json.dumps({"ph_heads": []}))
    with pytest.raises(ValueError, match="no 'ih_heads' list"):
        read_top_heads(path)
    path.write_text(json.dumps({"ph_heads": [{"layer": 1}], "ih_heads": []}))
    with pytest.raises(ValueError, match="lacks 'head'"):
        read_top_heads(path)
    with pytest.raises(FileNotFoundError, match="heads file not found"):
        read_top_heads(tmp_path / "absent.json")


def test_released_rankings_overlap_as_the_paper_says():
    mllm, llm = RELEASED["mllm"], RELEASED["llm"]
    # the file's top-5 are PAPER_PROTOCOL §5.2's released values
    assert [(h["layer"], h["head"], round(h["score"], 3)) for h in mllm["ph_heads"][:5]] == [
        (19, 11, .111), (19, 1, .074), (31, 9, .073), (1, 1, .066), (2, 13, .060)]
    assert [(h["layer"], h["head"], round(h["score"], 3)) for h in llm["ih_heads"][:5]] == [
        (20, 1, .133), (25, 5, .121), (26, 15, .110), (30, 3, .106), (20, 4, .103)]
    table = overlap_table(mllm, llm).set_index(["kind", "k"])
    assert table.overlap.to_dict() == {("ph", 5): 3, ("ph", 10): 6, ("ph", 20): 9,
                                       ("ih", 5): 2, ("ih", 10): 4, ("ih", 20): 11}
    # "4 of the MLLM's top-5 PH heads are in the LLM's top-10" (and 3 of 5 for IH)
    assert table.loc[("ph", 10), "a_top_in_b"] == 4
    assert table.loc[("ih", 10), "a_top_in_b"] == 3
    assert table.loc[("ph", 10), "common"].split() == \
        ["L1/H1", "L2/H13", "L19/H11", "L23/H15", "L28/H2", "L31/H9"]
