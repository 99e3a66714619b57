"""Previous-token (PH) and induction (IH) head scores of a real LM on Open-MI prompts (Fig. 7).

Definitions are the authors' (`mllm_head_analysis.py`, PAPER_PROTOCOL §5.2), computed with the
shared primitives of `mmicl.analysis.scores`, vectorised over layers and heads:

* PH(l, h) = mean over query rows t >= 1 of A[t, t-1], by default over **all** tokens, image
  patches included (the reference; in Open-MI prompts patches dominate, so it mostly measures
  patch-to-previous-patch attention). `ph_rows="text"` averages over rows whose token is not an
  image patch instead (MLLM_OFFLINE §2.7).
* IH(l, h) = mean attention of the last prompt token to the answer positions (every occurrence of
  the query's answer, bare or space-prefixed, i.e. the demonstrations carrying the query's label)
  minus its mean attention to every other position. An example with no answer occurrence scores 0.

Averaging over examples, two fidelity decisions (PAPER_PROTOCOL §9.23):
* IH keeps the reference's selection filter: an example counts only if its IH map has a positive
  maximum. It biases the mean upward; we keep it and record how many examples it dropped.
* PH is divided by the number of examples actually scored. The reference divides by the number
  loaded, so an example skipped for OOM pulls every score towards 0. Skipped examples (OOM is the
  only skip; any other error propagates) are recorded with their reason. Without skips the two
  are identical.

`scores_loop` is a plain per-head loop of the same definitions, kept only as the test oracle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmicl import io
from mmicl.analysis.adapter import check_heads, iter_chunks
from mmicl.analysis.scores import contrast, previous_token, query_row
from mmicl.vlm.prompt import Prompt, answer_mask

KINDS = ("ph", "ih")
PH_ROWS = ("all", "text")
OVERLAP_KS = (5, 10, 20)


@dataclass
class HeadScores:
    ph: np.ndarray  # [layers, heads], mean over the scored examples
    ih: np.ndarray  # [layers, heads], mean over the examples kept by the ih.max() > 0 filter
    n_examples: int  # examples given
    n_scored: int  # examples that ran (PH denominator)
    n_ih: int  # examples kept by the IH filter (IH denominator)
    ih_dropped: list[int] = field(default_factory=list)  # example indices the filter dropped
    skipped: list[dict] = field(default_factory=list)  # {"index", "reason"}
    predictions: dict[int, int] = field(default_factory=dict)  # index -> argmax next token


def example_scores(attn: torch.Tensor, answers: torch.Tensor, query: torch.Tensor,
                   ph_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """PH and IH of each sequence: attn [L, S, H, T, T]; answers (S, T) bool answer positions;
    query (S,) the last prompt token; ph_rows (S, T) bool rows for PH (None = all).
    Returns two [L, S, H] float32 tensors. Reductions run in float32 a few layers at a time, so a
    bf16 3B attention stack (~1.2 GB at T = 1000) is never copied whole to float32."""
    T = attn.shape[-1]
    keys = torch.arange(T, device=attn.device)[None] <= query.to(attn.device)[:, None]  # causal
    answers = answers.to(attn.device) & keys
    rows = None if ph_rows is None else ph_rows.to(attn.device)
    ph, ih = [], []
    for chunk in iter_chunks(attn.shape[0], 4):
        part = attn[chunk].float()
        ph.append(previous_token(part, 1, rows))
        ih.append(contrast(query_row(part, query), answers, keys & ~answers))
    ih = torch.cat(ih)
    return torch.cat(ph), ih * answers.any(-1).to(ih.dtype)[None, :, None]  # no answer: 0


def score_prompts(adapter, prompts: Iterable[Prompt], tokenizer, ph_rows: str = "all",
                  indices: Sequence[int] | None = None) -> HeadScores:
    """Run each prompt with attentions (one per forward, as the authors) and average the scores."""
    if ph_rows not in PH_ROWS:
        raise ValueError(f"ph_rows={ph_rows!r}; expected one of {', '.join(PH_ROWS)}")
    L, H = adapter.n_layers, adapter.n_heads
    ph_sum, ih_sum = np.zeros((L, H)), np.zeros((L, H))
    n, n_scored, n_ih, dropped, skipped, predictions = 0, 0, 0, [], [], {}
    for i, prompt in enumerate(prompts):
        index = i if indices is None else indices[i]
        n += 1
        try:
            out = adapter.run(prompt.inputs(), attention=True)
        except torch.OutOfMemoryError as exc:  # the reference's skip; anything else propagates
            skipped.append({"index": index, "reason": f"out of memory ({exc})".splitlines()[0]})
            torch.cuda.empty_cache()
            continue
        rows = prompt.text_mask()[None] if ph_rows == "text" else None
        query = torch.tensor([prompt.length - 1])
        predictions[index] = int(out.logits[0].argmax())
        ph, ih = example_scores(out.attention, answer_mask(prompt, tokenizer)[None], query, rows)
        del out
        ph, ih = ph[:, 0].cpu().double().numpy(), ih[:, 0].cpu().double().numpy()
        ph_sum += ph
        n_scored += 1
        if ih.max() > 0:
            ih_sum += ih
            n_ih += 1
        else:
            dropped.append(index)
    return HeadScores(ph_sum / max(n_scored, 1), ih_sum / max(n_ih, 1), n, n_scored, n_ih,
                      dropped, skipped, predictions)


def scores_loop(attn: Sequence[torch.Tensor], answers: Sequence[bool],
                ph_rows: Sequence[bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Test oracle: the same definitions for one sequence, one head at a time, in plain Python.
    attn: per layer an [H, T, T] tensor; answers, ph_rows: length-T booleans."""
    L, H, T = len(attn), attn[0].shape[0], attn[0].shape[-1]
    ph, ih = np.zeros((L, H)), np.zeros((L, H))
    answer_pos = [k for k in range(T) if answers[k]]
    other_pos = [k for k in range(T) if not answers[k]]
    for layer in range(L):
        for head in range(H):
            a = attn[layer][head].double().tolist()
            rows = [t for t in range(1, T) if ph_rows is None or ph_rows[t]]
            ph[layer, head] = sum(a[t][t - 1] for t in rows) / len(rows) if rows else 0.0
            if answer_pos:
                last = a[T - 1]
                on = sum(last[k] for k in answer_pos) / len(answer_pos)
                off = sum(last[k] for k in other_pos) / len(other_pos) if other_pos else 0.0
                ih[layer, head] = on - off
    return ph, ih


# --- ranking, interchange, overlap ----------------------------------------------------------------

def rank_heads(scores: np.ndarray, k: int | None = 20) -> list[dict]:
    """The top-k heads of a [layers, heads] map as [{"layer", "head", "score"}], descending. Ties
    go to the later flat index, as the reference's argsort(...)[::-1]."""
    scores = np.asarray(scores)
    order = np.argsort(scores.ravel(), kind="stable")[::-1][:k]
    return [{"layer": int(i // scores.shape[1]), "head": int(i % scores.shape[1]),
             "score": float(scores.ravel()[i])} for i in order]


def top_heads_dict(scores: HeadScores, k: int = 20) -> dict:
    """The authors' top_heads.json content."""
    return {"ph_heads": rank_heads(scores.ph, k), "ih_heads": rank_heads(scores.ih, k)}


def write_top_heads(scores: HeadScores, path: str | Path, k: int = 20) -> Path:
    return io.write_json(top_heads_dict(scores, k), path)


def read_top_heads(path: str | Path, k: int | None = 5, grid: tuple[int, int] | None = None
                   ) -> dict[str, list[tuple[int, int]]]:
    """{"ph": [(layer, head)...], "ih": [...]}: the first k of each list of a top_heads.json,
    checked against the model's (layers, heads) grid when given."""
    import json

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: heads file not found; expected a top_heads.json "
                                f"written by score_heads (or the authors')")
    data = json.loads(path.read_text())
    out = {}
    for kind in KINDS:
        key = f"{kind}_heads"
        if key not in data:
            raise ValueError(f"{path}: no {key!r} list; expected {{'ph_heads': [...], "
                             f"'ih_heads': [...]}} with entries {{layer, head, score}}")
        try:
            out[kind] = [(int(h["layer"]), int(h["head"])) for h in data[key][:k]]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}: an entry of {key!r} lacks {exc}; expected "
                             f"{{layer, head, score}}") from exc
        if grid is not None:
            try:
                check_heads(out[kind], *grid)
            except ValueError as exc:
                raise ValueError(f"{path}: {key}: {exc}") from None
    return out


def tidy_rows(scores: HeadScores, model: str, **columns) -> pd.DataFrame:
    """One row per (kind, layer, head): score and its 1-based rank, plus bookkeeping columns."""
    frames = []
    for kind, grid, n_used in (("ph", scores.ph, scores.n_scored), ("ih", scores.ih, scores.n_ih)):
        L, H = grid.shape
        order = np.argsort(grid.ravel(), kind="stable")[::-1]
        rank = np.empty(L * H, dtype=int)
        rank[order] = np.arange(1, L * H + 1)
        frames.append(pd.DataFrame({
            "model": model, "kind": kind, "layer": np.repeat(np.arange(L), H),
            "head": np.tile(np.arange(H), L), "score": grid.ravel(), "rank": rank,
            "n_examples": scores.n_examples, "n_used": n_used,
            "n_skipped": len(scores.skipped), "n_ih_dropped": len(scores.ih_dropped)}))
    df = pd.concat(frames, ignore_index=True)
    for key, value in columns.items():
        df[key] = value
    return df


def top_sets(df: pd.DataFrame, model: str, kind: str, k: int) -> set[tuple[int, int]]:
    sub = df[(df.model == model) & (df.kind == kind) & (df["rank"] <= k)]
    return set(zip(sub.layer.astype(int), sub.head.astype(int)))


def overlap_table(a: dict, b: dict, ks: Sequence[int] = OVERLAP_KS, a_top: int = 5
                  ) -> pd.DataFrame:
    """Overlap of two rankings in top_heads.json form (a = MLLM, b = LLM), per kind and k:
    `overlap` = |top-k(a) & top-k(b)| (the authors' compare_heads) and `a_top_in_b` =
    |top-a_top(a) & top-k(b)| (the paper's "4 of the MLLM's top-5 PH heads are in the LLM's
    top-10")."""
    def top(heads: list[dict], k: int) -> set[tuple[int, int]]:
        return {(int(h["layer"]), int(h["head"])) for h in heads[:k]}

    rows = []
    for kind in KINDS:
        la, lb = a[f"{kind}_heads"], b[f"{kind}_heads"]
        for k in ks:
            common = top(la, k) & top(lb, k)
            rows.append({"kind": kind, "k": k, "available": min(k, len(la), len(lb)),
                         "overlap": len(common), "a_top": a_top,
                         "a_top_in_b": len(top(la, a_top) & top(lb, k)),
                         "common": " ".join(f"L{layer}/H{h}" for layer, h in sorted(common))})
    return pd.DataFrame(rows)


def rankings_from_rows(df: pd.DataFrame, model: str, k: int = 20) -> dict:
    """A tidy head table back in top_heads.json form (for overlap_table on our own runs)."""
    out = {}
    for kind in KINDS:
        sub = df[(df.model == model) & (df.kind == kind)].sort_values("rank").head(k)
        out[f"{kind}_heads"] = [{"layer": int(r.layer), "head": int(r.head),
                                 "score": float(r.score)} for r in sub.itertuples()]
    return out
