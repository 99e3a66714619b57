"""Table 2: head knockout and modality zeroing of the default Stage-2 model, IC accuracy, under
every configured reading (`interventions` in config.yaml), next to the paper's values. `make`
draws the bar chart; `table` returns the rows for CSV/Markdown."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmicl.figures.common import grids_of, mean_std, seeds_note, select

PAPER = {  # intervention -> (label, paper mean, paper std or None)
    "full": ("full model", 0.970, 0.025),
    "ph_knockout": ("PH knockout (layer-1 head)", 0.199, 0.005),
    "ih_knockout": ("IH knockout (layer-2 head)", 0.062, 0.003),
    "zero_m2": ("M2 zeroed", 0.336, None),
    "zero_m1": ("M1 zeroed", 0.063, None),
}
READINGS = {  # reading -> how it is done (mmicl.analysis.interventions)
    "none": "",
    "zero": "value mix zeroed",
    "uniform": "uniform attention",
    "mean": "mean ablation",
    "items": "items + query",
    "tokens": "items + query + labels",
    "whole": "whole tokens",
    "query": "query only",
}


def table(df, sweep, defaults) -> pd.DataFrame:
    """One row per (intervention, reading): IC accuracy mean ± std over seeds, seed count, and
    the paper's value for that intervention."""
    sub = select(df, defaults, sweep, grids_of(sweep)[0])
    sub = sub[sub.split == "IC"]
    if "reading" not in sub:
        sub = sub.assign(reading="none")
    stats = mean_std(sub, ["intervention", "reading"])
    seeds = sub.groupby(["intervention", "reading"]).seed.nunique()
    rows = []
    order = {reading: i for i, reading in enumerate(READINGS)}
    stats = stats.assign(order=stats.reading.map(order).fillna(len(order)))
    for key, (label, paper, paper_std) in PAPER.items():
        for r in stats[stats.intervention == key].sort_values("order").itertuples():
            reading = READINGS.get(r.reading, r.reading)
            rows.append({
                "intervention": label + (f" ({reading})" if reading else ""),
                "key": key, "reading": r.reading,
                "ic_accuracy_mean": round(float(r.mean), 3),
                "ic_accuracy_std": round(float(r.std), 3),
                "seeds": int(seeds[(key, r.reading)]), "paper": paper, "paper_std": paper_std,
            })
    return pd.DataFrame(rows)


def markdown(rows: pd.DataFrame) -> str:
    lines = ["| intervention (reading) | ours: IC accuracy (mean ± std) | seeds | paper |",
             "|---|---|---|---|"]
    for r in rows.itertuples():
        paper = f"{r.paper:.3f}" + (f" ± {r.paper_std:.3f}" if pd.notna(r.paper_std) else "")
        lines.append(f"| {r.intervention} | {r.ic_accuracy_mean:.3f} ± {r.ic_accuracy_std:.3f} "
                     f"| {r.seeds} | {paper} |")
    return "\n".join(lines) + "\n"


def make(df, sweep, defaults):
    rows = table(df, sweep, defaults)
    fig, ax = plt.subplots(figsize=(max(7, 0.6 * len(rows) + 2), 3.6), constrained_layout=True)
    x = np.arange(len(rows))
    ax.bar(x - 0.2, rows.ic_accuracy_mean, 0.4, yerr=rows.ic_accuracy_std, capsize=3, label="ours")
    ax.bar(x + 0.2, rows.paper, 0.4, yerr=rows.paper_std.fillna(0), capsize=3, label="paper")
    ax.set_xticks(x, rows.intervention, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("ICL accuracy (novel classes)")
    ax.set_ylim(0, 1.05)
    ax.legend()
    ax.set_title(f"Table 2: knockouts and modality zeroing, every reading ({seeds_note(df)})",
                 fontsize=10)
    return fig
