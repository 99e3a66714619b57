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

import pandas as pd
import torch

from mmicl.analysis import scores
from mmicl.analysis.adapter import Positions, iter_chunks
from mmicl.analysis.evaluate import slice_batch

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


def item_indicator(modality: str) -> str:
    """TIIA of a modality's items: `tiia` for unimodal items, `tiia_m1` / `tiia_m2` for triplets."""
    return "tiia" if modality == "item" else f"tiia_{modality}"


def _check_inputs(attn: torch.Tensor, seq_labels: torch.Tensor, positions: Positions) -> None:
    if attn.dim() != 5:
        raise ValueError(f"attn has shape {tuple(attn.shape)}; "
                         f"expected (n_layers, S, n_heads, T, T)")
    S, N = attn.shape[1], positions.labels.shape[1]
    if tuple(positions.labels.shape) != (S, N) or tuple(seq_labels.shape) != (S, N + 1):
        raise ValueError(f"seq_labels has shape {tuple(seq_labels.shape)} and positions.labels "
                         f"{tuple(positions.labels.shape)}; expected (S, N+1) and (S, N) with "
                         f"S={S} sequences")
    T = attn.shape[-1]
    if int(positions.labels.max()) >= T or int(positions.query.max()) >= T:
        raise ValueError(f"positions point past the {T} tokens of the attention maps")


def per_sequence_scores(attn: torch.Tensor, seq_labels: torch.Tensor,
                        positions: Positions) -> dict[str, torch.Tensor]:
    """{indicator: (n_layers, S, H)} per-sequence values, before the mean over sequences.
    attn (n_layers, S, H, T, T); seq_labels (S, N+1): true labels of the N context pairs, then
    the query's; positions: the batch's token positions (index tensors)."""
    _check_inputs(attn, seq_labels, positions)
    T, N = attn.shape[-1], positions.labels.shape[1]
    labels = seq_labels.to(attn.device)
    match = labels[:, :N] == labels[:, N:]  # (S, N): context pairs carrying the query's label
    label_pos = positions.labels.to(attn.device)
    row = scores.query_row(attn, positions.query)  # (layers, S, H, T): the prediction's row
    to_labels = scores.gather_keys(row, label_pos)  # (layers, S, H, N)
    out = {
        "prev_token_1": scores.previous_token(attn, 1),
        "prev_token_2": scores.previous_token(attn, 2),
        "tila": scores.masked_mean(to_labels, match),
        "induction_strength": scores.masked_mean(to_labels, match)
        - scores.masked_mean(to_labels, ~match),
        "tla": to_labels.sum(-1),
        # the reference's n_pairs = (T-1)//3: floor(2N/3) labels for unimodal sequences (§9.6)
        "tla_ref": to_labels[..., : (T - 1) // 3].sum(-1),
    }
    for modality, item_pos in positions.items.items():
        to_items = scores.gather_keys(row, item_pos.to(attn.device))
        out[item_indicator(modality)] = scores.masked_mean(to_items, match)
    return {name: out[name] for name in INDICATORS if name in out}


def head_scores(attn: torch.Tensor, seq_labels: torch.Tensor,
                positions: Positions) -> dict[str, torch.Tensor]:
    """attn (n_layers, S, H, T, T) attention probabilities, seq_labels (S, N+1) true labels of the
    N context pairs then the query. Returns {indicator: (n_layers, H) float64}, the mean over
    sequences, for the indicators the positions define (unimodal items: tiia; triplets:
    tiia_m1, tiia_m2). Vectorised over layers, sequences and heads."""
    per_sequence = per_sequence_scores(attn, seq_labels, positions)
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
                    kind: str) -> dict[str, torch.Tensor]:
    """The slow reference, the test oracle: explicit loops over layers, heads, sequences and
    positions, written from the protocol's definitions with the positions spelled out for the
    `kind` of sequence ("unimodal": T = 2N+1, "multimodal": T = 3N+2)."""
    A = attn.double().tolist()  # plain floats: element indexing on tensors is ~100x slower
    labels = seq_labels.tolist()
    n_layers, S, H, T, _ = attn.shape
    N = seq_labels.shape[1] - 1
    q = T - 1
    if kind == "unimodal":
        def lab(i):
            return 2 * i + 1
        items = {"tiia": lambda i: 2 * i}
    else:
        def lab(i):
            return 3 * i + 2
        items = {"tiia_m1": lambda i: 3 * i, "tiia_m2": lambda i: 3 * i + 1}
    n_pairs_ref = (T - 1) // 3  # the reference's n_pairs
    names = [n for n in INDICATORS if not n.startswith("tiia") or n in items]

    def mean(values):
        return sum(values) / len(values) if values else 0.0

    out = {name: torch.zeros(n_layers, H, dtype=torch.float64) for name in names}
    for layer in range(n_layers):
        for head in range(H):
            total = dict.fromkeys(names, 0.0)
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
            for name in names:
                out[name][layer, head] = total[name] / S
    return out


def model_indicators(adapter, batch, chunk: int = 500) -> tuple[dict[str, torch.Tensor], float]:
    """Head scores and CLA of the model behind `adapter` on `batch` (with .seq_labels), run
    `chunk` sequences at a time to bound the (n_layers, chunk, H, T, T) attention tensor.
    Per-sequence sums are accumulated, so the result equals one big batch (up to rounding)."""
    S = batch.inputs.shape[0]
    if S == 0:
        raise ValueError("batch has no sequences; indicators are means over sequences")
    totals: dict[str, torch.Tensor] = {}
    copied = 0
    for sl in iter_chunks(S, chunk):
        part = slice_batch(batch, sl)
        out = adapter.run(part, attention=True)
        for name, value in per_sequence_scores(out.attention, part.seq_labels,
                                               adapter.positions(part)).items():
            total = value.sum(1, dtype=torch.float64)
            totals[name] = totals[name] + total if name in totals else total
        context = part.seq_labels[:, :-1].to(out.logits.device)
        copied += (context == out.logits.argmax(-1)[:, None]).any(1).sum().item()
    return {name: total / S for name, total in totals.items()}, copied / S


def snapshot_indicators(adapter, states, batch, accuracy: dict[int, dict[str, float]],
                        split: str = "IC", chunk: int = 500) -> pd.DataFrame:
    """Indicators through training: for each (iteration, state dict) in `states`, load the
    weights into the adapter's model and compute every head score and CLA on `batch` (the
    `split` evaluation set), next to that iteration's accuracy on every evaluation set, read
    from the run's curve (`accuracy[iteration]` = {set: accuracy}; the loop evaluates at every
    snapshot). Tidy rows: iteration, layer, head, indicator, value, split, acc_<set>..."""
    frames = []
    for iteration, state in states:
        if iteration not in accuracy:
            raise ValueError(f"no evaluation at snapshot iteration {iteration} in the curve "
                             f"(evaluated at {sorted(accuracy)[:8]}...)")
        adapter.model.load_state_dict(state)
        head, cla = model_indicators(adapter, batch, chunk)
        acc = {f"acc_{name}": value for name, value in accuracy[iteration].items()}
        frames.append(indicator_table(head, cla, iteration=int(iteration), split=split, **acc))
    if not frames:
        raise ValueError("no snapshots to compute indicators on")
    return pd.concat(frames, ignore_index=True)


def run_indicators(run_dir, chunk: int = 500) -> pd.DataFrame:
    """Indicators of every weight snapshot of the trained run in `run_dir` (its snapshots.pt),
    on the run's indicator split, beside the accuracies its curve logged at those iterations;
    a `family` column says unimodal (Stage 1) or multimodal (Stage 2)."""
    from pathlib import Path

    from mmicl.analysis.runs import load_run
    from mmicl.train.outputs import Snapshots

    run = load_run(run_dir, weights="")
    split = run.spec.eval.indicator_split
    if split not in run.test_sets:
        raise ValueError(f"{run_dir}: indicator split {split!r} is not a test set; have "
                         f"{sorted(run.test_sets)}")
    curve = run.curve()
    evals = curve[curve.split != "train"]
    accuracy = {int(it): dict(zip(g.split, g.accuracy)) for it, g in evals.groupby("iteration")}
    path = Path(run_dir) / "snapshots.pt"
    snapshots = Snapshots.load(path)
    states = ((it, snapshots.state(it)) for it in snapshots.iterations)
    try:
        table = snapshot_indicators(run.adapter, states, run.test_sets[split], accuracy, split,
                                    chunk)
    except RuntimeError as exc:  # load_state_dict: the snapshots belong to another model
        raise ValueError(f"{path}: snapshot does not fit the run's model ({exc})") from None
    table.insert(0, "family", run.family)
    return table
