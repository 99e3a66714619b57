"""Table 1: Pearson correlation of every indicator with IC accuracy, per family, beside the
paper's values, and the random-forest R^2 (grouped cross-validation) with the best small subsets.
Reads the regression table (mmicl.analysis.regression)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmicl.analysis.regression import FAMILIES, paper_name


def table(df, sweep=None, defaults=None) -> pd.DataFrame:
    """One row per (family, feature) of the Pearson correlations (all snapshots and final
    snapshots), ranked by |r| over all snapshots, then the R^2 rows."""
    rows = []
    for family in FAMILIES:
        fam = df[df.family == family]
        p_all = fam[(fam.kind == "pearson") & (fam.data == "all")].set_index("feature")
        p_fin = fam[(fam.kind == "pearson") & (fam.data == "final")].set_index("feature")
        order = p_all["value"].abs().sort_values(ascending=False, na_position="last").index
        for rank, feature in enumerate(order, 1):
            rows.append({
                "family": family, "quantity": "pearson", "name": paper_name(feature),
                "feature": feature, "rank": rank,
                "ours_all": round(float(p_all.at[feature, "value"]), 3),
                "ours_final": (round(float(p_fin.at[feature, "value"]), 3)
                               if feature in p_fin.index else np.nan),
                "paper": p_all.at[feature, "paper"],
            })
        for kind in ("r2", "r2_pooled", "subset_1", "subset_2", "subset_3"):
            sel = fam[fam.kind == kind]
            if sel.empty:
                continue
            by_data = sel.set_index("data")
            feature = by_data["feature"].iloc[0] if kind.startswith("subset") else None
            rows.append({
                "family": family, "quantity": kind,
                "name": " + ".join(paper_name(f) for f in feature.split("+")) if feature
                else "random forest, all indicators",
                "feature": feature, "rank": np.nan,
                "ours_all": round(float(by_data.at["all", "value"]), 3)
                if "all" in by_data.index else np.nan,
                "ours_final": round(float(by_data.at["final", "value"]), 3)
                if "final" in by_data.index else np.nan,
                "paper": by_data["paper"].iloc[0],
            })
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    return "–" if pd.isna(v) else f"{v:.2f}"


def markdown(rows: pd.DataFrame) -> str:
    lines = []
    for family in FAMILIES:
        fam = rows[rows.family == family]
        if fam.empty:
            continue
        lines += [f"**{family}** (IC accuracy; ours over all snapshots / final snapshots only)", "",
                  "| rank | indicator | ours, all snapshots | ours, final | paper |",
                  "|---|---|---|---|---|"]
        for r in fam[fam.quantity == "pearson"].itertuples():
            lines.append(f"| {int(r.rank)} | {r.name} | {_fmt(r.ours_all)} | {_fmt(r.ours_final)} "
                         f"| {_fmt(r.paper)} |")
        for r in fam[fam.quantity != "pearson"].itertuples():
            label = {"r2": "R² (mean over folds)", "r2_pooled": "R² (pooled out-of-fold)"}.get(
                r.quantity, f"R², best {r.quantity[-1]}-indicator subset")
            lines.append(f"| {label} | {r.name} | {_fmt(r.ours_all)} | {_fmt(r.ours_final)} "
                         f"| ≥ {_fmt(r.paper)} |")
        lines.append("")
    return "\n".join(lines)


def make(df, sweep=None, defaults=None):
    rows = table(df)
    families = [f for f in FAMILIES if f in set(rows.family)]
    fig, axes = plt.subplots(1, len(families), squeeze=False,
                             figsize=(5.5 * len(families), 4.2), constrained_layout=True)
    for ax, family in zip(axes[0], families):
        p = rows[(rows.family == family) & (rows.quantity == "pearson")]
        y = np.arange(len(p))
        ax.barh(y - 0.2, p.ours_all, 0.4, label="ours (all snapshots)")
        ax.barh(y + 0.2, p.paper.fillna(0), 0.4, label="paper")
        ax.set_yticks(y, p.name, fontsize=7)
        ax.invert_yaxis()
        ax.axvline(0, color="k", linewidth=0.5)
        r2 = rows[(rows.family == family) & (rows.quantity == "r2")]
        note = f", RF R² = {r2.ours_all.iloc[0]:.2f}" if not r2.empty else ""
        ax.set_title(f"{family}: Pearson r with IC accuracy{note}", fontsize=9)
        ax.set_xlim(-1, 1)
        ax.legend(fontsize=7)
    fig.suptitle("Table 1: indicators vs ICL accuracy (paper R² ≥ 0.91)", fontsize=10)
    return fig
