"""Table 2: head knockout and modality zeroing of the default Stage-2 model, IC accuracy, next
to the paper's values. `make` draws the bar chart; `table` returns the rows for CSV/Markdown."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmicl.figures.common import grids_of, mean_std, seeds_note, select

ROWS = {  # intervention -> (label, paper mean, paper std or None)
    "full": ("full model", 0.970, 0.025),
    "ph_knockout": ("PH knockout (layer-1 head)", 0.199, 0.005),
    "ih_knockout": ("IH knockout (layer-2 head)", 0.062, 0.003),
    "zero_m2": ("M2 zeroed", 0.336, None),
    "zero_m1": ("M1 zeroed", 0.063, None),
}


def table(df, sweep, defaults) -> pd.DataFrame:
    sub = select(df, defaults, sweep, grids_of(sweep)[0])
    stats = mean_std(sub[sub.split == "IC"], ["intervention"]).set_index("intervention")
    rows = []
    for key, (label, paper, paper_std) in ROWS.items():
        if key not in stats.index:
            continue
        s = stats.loc[key]
        rows.append({
            "intervention": label, "ic_accuracy_mean": round(float(s["mean"]), 3),
            "ic_accuracy_std": round(float(s["std"]), 3), "seeds": int(s["count"]),
            "paper": paper, "paper_std": paper_std,
        })
    return pd.DataFrame(rows)


def markdown(rows: pd.DataFrame) -> str:
    lines = ["| intervention | ours: IC accuracy (mean ± std) | seeds | paper |",
             "|---|---|---|---|"]
    for r in rows.itertuples():
        paper = f"{r.paper:.3f}" + (f" ± {r.paper_std:.3f}" if pd.notna(r.paper_std) else "")
        lines.append(f"| {r.intervention} | {r.ic_accuracy_mean:.3f} ± {r.ic_accuracy_std:.3f} "
                     f"| {r.seeds} | {paper} |")
    return "\n".join(lines) + "\n"


def make(df, sweep, defaults):
    rows = table(df, sweep, defaults)
    fig, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, rows.ic_accuracy_mean, 0.4, yerr=rows.ic_accuracy_std, capsize=3, label="ours")
    ax.bar(x + 0.2, rows.paper, 0.4, yerr=rows.paper_std.fillna(0), capsize=3, label="paper")
    ax.set_xticks(x, rows.intervention, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("ICL accuracy (novel classes)")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title(f"Table 2: knockouts and modality zeroing ({seeds_note(df)})", fontsize=10)
    return fig
