"""Table 3: Open-MI 2-shot accuracy of Qwen2.5-VL with its top-5 PH, top-5 IH or both knocked
out, beside the paper's values (baseline 0.74, PH 0.65, IH 0.58, both 0.56), plus our random-heads
control, CLA and Wilson 95% intervals. Reads the summary of `mmicl.vlm.pipeline.run_knockout`.
A table made from a tiny random checkpoint says so in the title.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmicl.figures.fig7 import tiny_note
from mmicl.vlm.knockout import CONDITIONS, PAPER_ACCURACY


def table(df, sweep, defaults) -> pd.DataFrame:
    order = {c: i for i, c in enumerate(CONDITIONS)}
    df = df.sort_values("condition", key=lambda s: s.map(order))
    return pd.DataFrame({
        "condition": df.condition, "knockout": df.label, "heads": df["heads"],
        "accuracy": df.accuracy.round(3), "accuracy_lo": df.accuracy_lo.round(3),
        "accuracy_hi": df.accuracy_hi.round(3), "cla": df.cla.round(3),
        "n_eval": df.n_eval, "n_changed": df.n_changed,
        "paper_accuracy": df.condition.map(PAPER_ACCURACY),
        "tiny": df.tiny if "tiny" in df else False}).reset_index(drop=True)


def markdown(rows: pd.DataFrame) -> str:
    note = " (tiny random model: not Qwen2.5-VL results)" if rows.tiny.any() else ""
    lines = [f"Table 3{note}", "",
             "| knockout | ours: accuracy [95% CI] | CLA | n | predictions changed | paper |",
             "|---|---|---|---|---|---|"]
    for r in rows.itertuples():
        paper = "" if pd.isna(r.paper_accuracy) else f"{r.paper_accuracy:.2f}"
        lines.append(f"| {r.knockout} | {r.accuracy:.3f} [{r.accuracy_lo:.3f}, "
                     f"{r.accuracy_hi:.3f}] | {r.cla:.3f} | {r.n_eval} | {r.n_changed} | {paper} |")
    return "\n".join(lines) + "\n"


def make(df, sweep, defaults):
    rows = table(df, sweep, defaults)
    fig, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    x = np.arange(len(rows))
    err = np.vstack([rows.accuracy - rows.accuracy_lo, rows.accuracy_hi - rows.accuracy])
    ax.bar(x - 0.2, rows.accuracy, 0.4, yerr=err, capsize=3, label="ours (Wilson 95% CI)")
    ax.bar(x + 0.2, rows.paper_accuracy.fillna(0), 0.4, label="paper")
    ax.plot(x, rows.cla, "k_", markersize=14, label="ours: CLA")
    ax.set_xticks(x, rows.knockout, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("Open-MI 2-shot accuracy")
    ax.set_ylim(0, 1.05)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")  # 2-way chance
    ax.legend(fontsize=7)
    n = int(rows.n_eval.max()) if len(rows) else 0
    ax.set_title(f"Table 3: head knockout, n = {n}{tiny_note(rows)}", fontsize=10)
    return fig
