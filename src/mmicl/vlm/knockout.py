"""Table 3: Open-MI accuracy and CLA of Qwen2.5-VL with its top heads knocked out.

As the authors' `mllm_knockout.py` (PAPER_PROTOCOL §5.3): the top-5 PH heads, the top-5 IH heads,
or both (IH + PH, 10 heads) are removed by `HFAdapter.ablate_heads` (the o_proj pre-hook), and
the greedy next token at the end of the prompt is scored:
* accuracy: argmax == the first token of the bare answer;
* CLA (copying from labels): argmax is among the first tokens, bare or space-prefixed, of the
  demonstrations' answers.
First-token scoring is exact for single-token labels (Open-MI's nonce words mostly are in Qwen's
vocabulary; not guaranteed) and is what the paper reports.

Additions, all on the same examples as the baseline: a random-heads control (5 heads drawn with a
seed from the heads listed in neither ranking of the heads file, so never a top head), a Wilson
95% interval for each rate (50 examples give about +-0.14), the number of examples whose
prediction the knockout changed, and n_eval. An example skipped in any condition (OOM, the only
skip) is dropped from all, so baseline and knockouts stay paired.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from mmicl.analysis.adapter import check_heads
from mmicl.vlm.prompt import Prompt, answer_first_token, first_tokens

CONDITIONS = ("baseline", "ph", "ih", "both", "random")
CONDITION_LABELS = {"baseline": "no knockout", "ph": "top-5 PH knocked out",
                    "ih": "top-5 IH knocked out", "both": "top-5 PH + IH knocked out",
                    "random": "5 random heads knocked out (control)"}
PAPER_ACCURACY = {"baseline": 0.74, "ph": 0.65, "ih": 0.58, "both": 0.56}  # [SUM], 50 examples
Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n (nan, nan for n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends (no 1e-17 rounding residue)
    return lo, 1.0 if k == n else min(1.0, centre + half)


def random_heads(n_layers: int, n_heads: int, exclude: Sequence[tuple[int, int]], n: int = 5,
                 seed: int = 0) -> list[tuple[int, int]]:
    """n distinct heads drawn uniformly (numpy default_rng(seed)) from the grid minus `exclude`,
    in grid order."""
    excluded = {(int(layer), int(h)) for layer, h in exclude}
    pool = [(layer, h) for layer in range(n_layers) for h in range(n_heads)
            if (layer, h) not in excluded]
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} heads outside the excluded set; cannot draw {n}")
    picks = np.random.default_rng(seed).choice(len(pool), size=n, replace=False)
    return sorted(pool[i] for i in picks)


def condition_heads(top: dict[str, list[tuple[int, int]]], exclude: Sequence[tuple[int, int]],
                    grid: tuple[int, int], k: int = 5, seed: int = 0) -> dict[str, list]:
    """The heads each condition removes: top-k PH, top-k IH, both (IH then PH, as the reference)
    and the random control."""
    ph, ih = list(top["ph"][:k]), list(top["ih"][:k])
    for kind, heads in (("ph", ph), ("ih", ih)):
        if len(heads) < k:
            raise ValueError(f"the heads file lists {len(heads)} {kind.upper()} heads; "
                             f"expected at least {k}")
        check_heads(heads, *grid)
    return {"baseline": [], "ph": ph, "ih": ih, "both": ih + ph,
            "random": random_heads(*grid, exclude=exclude, n=k, seed=seed)}


def predict(adapter, prompts: Sequence[Prompt]) -> list[int | None]:
    """Argmax next token at the end of each prompt; None where the forward ran out of memory."""
    out = []
    for prompt in prompts:
        try:
            out.append(int(adapter.run(prompt.inputs()).logits[0].argmax()))
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            out.append(None)
    return out


def knockout_table(adapter, prompts: Sequence[Prompt], tokenizer,
                   heads: dict[str, list[tuple[int, int]]],
                   indices: Sequence[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, per_example) for each condition in `heads` (from `condition_heads`)."""
    indices = list(range(len(prompts))) if indices is None else list(indices)
    targets = [answer_first_token(tokenizer, p.answer) for p in prompts]
    copies = [first_tokens(tokenizer, p.demo_answers) for p in prompts]
    preds = {}
    for condition, removed in heads.items():
        with adapter.ablate_heads(removed):
            preds[condition] = predict(adapter, prompts)
    ran = [all(preds[c][i] is not None for c in heads) for i in range(len(prompts))]
    per_example = pd.DataFrame([
        {"condition": c, "example": indices[i], "prediction": preds[c][i],
         "target": targets[i], "correct": preds[c][i] == targets[i],
         "cla": preds[c][i] in copies[i],
         "changed": preds[c][i] != preds.get("baseline", preds[c])[i]}
        for c in heads for i in range(len(prompts)) if ran[i]])
    n = sum(ran)
    rows = []
    for condition, removed in heads.items():
        sub = per_example[per_example.condition == condition] if n else per_example
        k_acc, k_cla = int(sub.correct.sum()) if n else 0, int(sub.cla.sum()) if n else 0
        acc_lo, acc_hi = wilson(k_acc, n)
        cla_lo, cla_hi = wilson(k_cla, n)
        rows.append({
            "condition": condition, "label": CONDITION_LABELS.get(condition, condition),
            "heads": " ".join(f"L{layer}/H{h}" for layer, h in removed), "n_heads": len(removed),
            "n_eval": n, "n_skipped": len(prompts) - n,
            "n_correct": k_acc, "accuracy": k_acc / n if n else float("nan"),
            "accuracy_lo": acc_lo, "accuracy_hi": acc_hi,
            "n_cla": k_cla, "cla": k_cla / n if n else float("nan"),
            "cla_lo": cla_lo, "cla_hi": cla_hi,
            "n_changed": int(sub.changed.sum()) if n else 0,
            "paper_accuracy": PAPER_ACCURACY.get(condition, float("nan"))})
    summary = pd.DataFrame(rows)
    if "baseline" in heads:
        base = summary.set_index("condition").loc["baseline"]
        summary["delta_accuracy"] = summary.accuracy - base.accuracy
        summary["delta_cla"] = summary.cla - base.cla
    return summary, per_example


def authors_json(summary: pd.DataFrame, condition: str,
                 heads: dict[str, list[tuple[int, int]]]) -> dict:
    """The authors' knockout_{type}_results.json for one condition (ph, ih, both; random too)."""
    s = summary.set_index("condition")
    base, ko = s.loc["baseline"], s.loc[condition]
    return {"knockout_type": condition,
            "heads": [{"layer": int(layer), "head": int(h)} for layer, h in heads[condition]],
            "baseline": {"accuracy": float(base.accuracy), "cla": float(base.cla)},
            "knockout": {"accuracy": float(ko.accuracy), "cla": float(ko.cla)},
            "diff": {"accuracy": float(ko.accuracy - base.accuracy),
                     "cla": float(ko.cla - base.cla)},
            "num_eval": int(ko.n_eval)}
