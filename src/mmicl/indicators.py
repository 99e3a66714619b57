"""Attention "progress measures" per layer and head (protocol §4), vectorised, plus a slow reference.

Every head score is a mean over sequences of a quantity read from one head's attention
probabilities A = attn[layer, s, head] (TransformerLens layout [batch, head, query, key]); scores
come back shaped [layers, heads]. The "target row" is the last position T-1 (the unimodal query
item; the multimodal M2 query slot). For sequence s, M_s = context pairs whose TRUE label equals the
query's (matching by label, not by class) and U_s = the others; a mean over an empty set is 0 and
the sequence still counts in the batch mean (as in the reference).

| name               | paper name      | definition (then mean over sequences)                         |
|--------------------|-----------------|---------------------------------------------------------------|
| prev_token_1       | PHStrength^(1)  | mean_{t=1..T-1} A[t, t-1]  (all token types)                   |
| prev_token_2       | PHStrength^(2)  | mean_{t=2..T-1} A[t, t-2]  (offset-2 reading is a guess, §4)   |
| induction_strength | IndStrength     | mean_{i in M} A[T-1, lab(i)] - mean_{i in U} A[T-1, lab(i)]   |
| tila               | -               | mean_{i in M} A[T-1, lab(i)]                                  |
| tiia               | -               | mean_{i in M} A[T-1, 2i]       (unimodal only)                 |
| tiia_m1, tiia_m2   | -               | same with 3i / 3i+1            (multimodal only)               |
| tla                | TLA             | sum_{j<N} A[T-1, lab(j)]       (all N label tokens)            |
| tla_ref            | TLA (as logged) | sum_{j<(T-1)//3} A[T-1, lab(j)]: the reference's truncation,   |
|                    |                 | floor(2N/3) labels for unimodal (§9.6), == tla for multimodal |
| cla                | CLA             | fraction of sequences whose argmax label is one of the N       |
|                    |                 | context labels (model-level, not per head)                    |

The reference computes these with Python loops over sequences and positions and assumes one head
(§9.7); `indicators_loop` keeps that style as the test oracle, `head_scores` is the masked version.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from mmicl.evaluate import forward, slice_batch

INDICATORS = ("prev_token_1", "prev_token_2", "induction_strength", "tila", "tiia",
              "tiia_m1", "tiia_m2", "tla", "tla_ref")
CLA = "cla"
PAPER_NAMES = {
    "prev_token_1": "PHStrength^(1)",
    "prev_token_2": "PHStrength^(2)",
    "induction_strength": "IndStrength",
    "tla": "TLA",
    CLA: "CLA",
}
LAYOUT_KINDS = ("unimodal", "multimodal")


@dataclass(frozen=True)
class Layout:
    """Token positions of a sequence.

    unimodal:   x_0 y_0 ... x_{N-1} y_{N-1} x_q                       T = 2N+1
    multimodal: (m1_i m2_i y_i) for i < N, then the M1 query, the M2 query slot   T = 3N+2
    """

    kind: str  # "unimodal" | "multimodal"
    N: int  # context pairs

    def __post_init__(self) -> None:
        if self.kind not in LAYOUT_KINDS:
            raise ValueError(f"Layout.kind={self.kind!r} is not a known layout; "
                             f"expected one of: {', '.join(LAYOUT_KINDS)}")
        # bool is an int subclass: N=True is a typo, not one pair
        if isinstance(self.N, bool) or not isinstance(self.N, int) or self.N <= 0:
            raise ValueError(f"Layout.N={self.N!r} must be a positive integer (context pairs)")

    @property
    def T(self) -> int:
        return 2 * self.N + 1 if self.kind == "unimodal" else 3 * self.N + 2

    @property
    def stride(self) -> int:
        return 2 if self.kind == "unimodal" else 3

    def _pairs(self) -> torch.Tensor:
        return torch.arange(self.N) * self.stride

    @property
    def label_positions(self) -> torch.Tensor:
        """(N,) long: 2i+1 (unimodal) or 3i+2 (multimodal)."""
        return self._pairs() + self.stride - 1

    @property
    def item_positions(self) -> torch.Tensor:
        """(N,) long: 2i, the context items of a unimodal sequence."""
        self._require("unimodal", "item_positions", "m1_positions / m2_positions")
        return self._pairs()

    @property
    def m1_positions(self) -> torch.Tensor:
        """(N,) long: 3i, the M1 items of a multimodal sequence."""
        self._require("multimodal", "m1_positions", "item_positions")
        return self._pairs()

    @property
    def m2_positions(self) -> torch.Tensor:
        """(N,) long: 3i+1, the M2 slots of a multimodal sequence."""
        self._require("multimodal", "m2_positions", "item_positions")
        return self._pairs() + 1

    def _require(self, kind: str, what: str, instead: str) -> None:
        if self.kind != kind:
            raise ValueError(f"Layout.kind={self.kind!r} has no {what} (only {kind!r}); "
                             f"use {instead}")

    def item_indicators(self) -> dict[str, torch.Tensor]:
        """{TIIA-style indicator: item positions it reads}."""
        if self.kind == "unimodal":
            return {"tiia": self.item_positions}
        return {"tiia_m1": self.m1_positions, "tiia_m2": self.m2_positions}

    @property
    def indicators(self) -> tuple[str, ...]:
        """The INDICATORS defined for this layout, in INDICATORS order."""
        absent = ("tiia_m1", "tiia_m2") if self.kind == "unimodal" else ("tiia",)
        return tuple(name for name in INDICATORS if name not in absent)


def _check_inputs(attn: torch.Tensor, seq_labels: torch.Tensor, layout: Layout) -> None:
    if attn.dim() != 5:
        raise ValueError(f"attn has shape {tuple(attn.shape)}; "
                         f"expected (n_layers, S, n_heads, T, T)")
    _, S, _, Tq, Tk = attn.shape
    if (Tq, Tk) != (layout.T, layout.T):
        raise ValueError(f"attn has (query, key) sizes {(Tq, Tk)} but Layout(kind={layout.kind!r}, "
                         f"N={layout.N}) has T={layout.T} positions")
    if tuple(seq_labels.shape) != (S, layout.N + 1):
        raise ValueError(f"seq_labels has shape {tuple(seq_labels.shape)}; "
                         f"expected (S, N+1)={(S, layout.N + 1)}")


def per_sequence_scores(attn: torch.Tensor, seq_labels: torch.Tensor,
                        layout: Layout) -> dict[str, torch.Tensor]:
    """{indicator: (n_layers, S, H)} per-sequence values, before the mean over sequences.
    Exposed so callers can sum over chunks (model_indicators) or split sequences by subgroup."""
    _check_inputs(attn, seq_labels, layout)
    N, T = layout.N, layout.T
    device = attn.device
    out = {
        # diagonal(offset=-k) holds A[t, t-k] for t = k..T-1 (query = dim -2, key = dim -1)
        "prev_token_1": attn.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1),
        "prev_token_2": attn.diagonal(offset=-2, dim1=-2, dim2=-1).mean(-1),
    }
    target = attn[..., T - 1, :]  # (layers, S, H, T): the row the prediction is read from
    labels = seq_labels.to(device)
    match = (labels[:, :N] == labels[:, N:]).to(attn.dtype)  # (S, N)
    other = 1.0 - match
    # clamp: an empty set has a zero masked sum, so its mean comes out 0 as the protocol wants
    match_w = (match / match.sum(1, keepdim=True).clamp(min=1))[None, :, None, :]
    other_w = (other / other.sum(1, keepdim=True).clamp(min=1))[None, :, None, :]

    to_labels = target[..., layout.label_positions.to(device)]  # (layers, S, H, N)
    out["tila"] = (to_labels * match_w).sum(-1)
    out["induction_strength"] = out["tila"] - (to_labels * other_w).sum(-1)
    for name, positions in layout.item_indicators().items():
        out[name] = (target[..., positions.to(device)] * match_w).sum(-1)
    out["tla"] = to_labels.sum(-1)
    out["tla_ref"] = to_labels[..., : (T - 1) // 3].sum(-1)
    return {name: out[name] for name in layout.indicators}


def head_scores(attn: torch.Tensor, seq_labels: torch.Tensor,
                layout: Layout) -> dict[str, torch.Tensor]:
    """attn (n_layers, S, H, T, T) attention probabilities, seq_labels (S, N+1) true labels of the
    N context pairs then the query. Returns {indicator: (n_layers, H) float64}, the mean over
    sequences, for the indicators defined on `layout` (unimodal: no tiia_m1/tiia_m2; multimodal:
    no tiia). Vectorised over layers, sequences and heads."""
    per_sequence = per_sequence_scores(attn, seq_labels, layout)
    S = attn.shape[1]
    return {name: value.sum(1, dtype=torch.float64) / S for name, value in per_sequence.items()}


def copy_from_context_rate(predictions: torch.Tensor, seq_labels: torch.Tensor) -> float:
    """CLA: fraction of sequences whose predicted label is one of the N context labels (the TRUE
    labels seq_labels[:, :N], as in the reference). `predictions` is (S, n_labels) logits (argmax
    taken) or (S,) predicted labels."""
    if predictions.dim() == 2:
        predictions = predictions.argmax(-1)
    if predictions.dim() != 1 or seq_labels.dim() != 2 or predictions.shape[0] != seq_labels.shape[0]:
        raise ValueError(f"predictions has shape {tuple(predictions.shape)} and seq_labels "
                         f"{tuple(seq_labels.shape)}; expected (S,) or (S, n_labels) and (S, N+1)")
    context = seq_labels[:, :-1].to(predictions.device)
    # an integer count over S: exactly the fraction model_indicators accumulates chunk by chunk
    return (context == predictions[:, None]).any(1).sum().item() / predictions.shape[0]


def indicator_table(scores: dict[str, torch.Tensor], cla: float | None = None,
                    **columns) -> pd.DataFrame:
    """Tidy rows (layer, head, indicator, value, *columns). `layer` is 1-based like the paper's
    subscripts (IndStrength_2 = layer 2), `head` 0-based. CLA is a property of the model, not of a
    head: its row has layer=0, head=-1 and indicator "cla". Extra keyword columns (run, seed,
    iteration, split, ...) are repeated on every row."""
    rows = []
    for name, values in scores.items():
        if values.dim() != 2:
            raise ValueError(f"scores[{name!r}] has shape {tuple(values.shape)}; "
                             f"expected (n_layers, n_heads)")
        for layer, per_head in enumerate(values.tolist()):
            rows += [(layer + 1, head, name, v) for head, v in enumerate(per_head)]
    if cla is not None:
        rows.append((0, -1, CLA, float(cla)))
    table = pd.DataFrame(rows, columns=["layer", "head", "indicator", "value"])
    for key, value in columns.items():
        table[key] = value
    return table


def indicators_loop(attn: torch.Tensor, seq_labels: torch.Tensor,
                    layout: Layout) -> dict[str, torch.Tensor]:
    """The slow reference: explicit loops over layers, heads, sequences and positions, written
    from the protocol's definitions (positions spelled out here, not taken from Layout)."""
    _check_inputs(attn, seq_labels, layout)
    A = attn.double().tolist()  # plain floats: element indexing on tensors is ~100x slower
    labels = seq_labels.tolist()
    n_layers, S, H, T, _ = attn.shape
    N = layout.N
    q = T - 1
    if layout.kind == "unimodal":
        def lab(i):
            return 2 * i + 1
        items = {"tiia": lambda i: 2 * i}
    else:
        def lab(i):
            return 3 * i + 2
        items = {"tiia_m1": lambda i: 3 * i, "tiia_m2": lambda i: 3 * i + 1}
    n_pairs_ref = (T - 1) // 3  # the reference's n_pairs

    def mean(values):
        return sum(values) / len(values) if values else 0.0

    out = {name: torch.zeros(n_layers, H, dtype=torch.float64) for name in layout.indicators}
    for layer in range(n_layers):
        for head in range(H):
            total = dict.fromkeys(layout.indicators, 0.0)
            for s in range(S):
                a = A[layer][s][head]
                matching = [i for i in range(N) if labels[s][i] == labels[s][N]]
                others = [i for i in range(N) if labels[s][i] != labels[s][N]]
                total["prev_token_1"] += mean([a[t][t - 1] for t in range(1, T)])
                total["prev_token_2"] += mean([a[t][t - 2] for t in range(2, T)])
                tila = mean([a[q][lab(i)] for i in matching])
                total["tila"] += tila
                total["induction_strength"] += tila - mean([a[q][lab(i)] for i in others])
                for name, itm in items.items():
                    total[name] += mean([a[q][itm(i)] for i in matching])
                total["tla"] += sum(a[q][lab(j)] for j in range(N))
                total["tla_ref"] += sum(a[q][lab(j)] for j in range(n_pairs_ref))
            for name in layout.indicators:
                out[name][layer, head] = total[name] / S
    return out


@torch.no_grad()
def model_indicators(model, batch, layout: Layout,
                     chunk: int = 500) -> tuple[dict[str, torch.Tensor], float]:
    """Head scores and CLA of `model` on `batch` (any object with .inputs, .pos_offsets,
    .seq_labels, and .m2_inputs for a multimodal model), run `chunk` sequences at a time to bound
    the (n_layers, chunk, H, T, T) attention tensor. Per-sequence sums are accumulated, so the
    result equals one big batch (up to float rounding)."""
    if not isinstance(chunk, int) or chunk <= 0:
        raise ValueError(f"chunk={chunk!r} must be a positive integer")
    S = batch.inputs.shape[0]
    if S == 0:
        raise ValueError("batch has no sequences; indicators are means over sequences")
    was_training = model.training
    model.eval()
    totals: dict[str, torch.Tensor] = {}
    copied = 0
    try:
        for start in range(0, S, chunk):
            sl = slice(start, start + chunk)
            logits, attn = forward(model, slice_batch(batch, sl), return_attn=True)
            labels = batch.seq_labels[sl]
            for name, value in per_sequence_scores(attn, labels, layout).items():
                part = value.sum(1, dtype=torch.float64)
                totals[name] = totals[name] + part if name in totals else part
            context = labels[:, :-1].to(logits.device)
            copied += (context == logits.argmax(-1)[:, None]).any(1).sum().item()
    finally:
        model.train(was_training)
    return {name: total / S for name, total in totals.items()}, copied / S


def snapshot_indicators(model, states, test_sets: dict, layout: Layout, modulus: int,
                        split: str = "IC", chunk: int = 500) -> pd.DataFrame:
    """Indicators through training: for each (iteration, state dict) in `states`, load the weights
    into `model` and compute every head score and CLA on `test_sets[split]`, next to the accuracy
    on every evaluation set at that iteration (columns acc_<set>). Tidy rows: iteration, layer,
    head, indicator, value, acc_IC, acc_IW, ..."""
    from mmicl.evaluate import evaluate

    if split not in test_sets:
        raise ValueError(f"indicator split {split!r} is not a test set; have {sorted(test_sets)}")
    frames = []
    for iteration, state in states:
        model.load_state_dict(state)
        scores, cla = model_indicators(model, test_sets[split], layout, chunk)
        accuracy = {f"acc_{name}": m["accuracy"]
                    for name, m in evaluate(model, test_sets, modulus).items()}
        frames.append(indicator_table(scores, cla, iteration=int(iteration), split=split,
                                      **accuracy))
    if not frames:
        raise ValueError("no snapshots to compute indicators on")
    return pd.concat(frames, ignore_index=True)
