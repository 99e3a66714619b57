"""Random-forest regression of IC accuracy on the indicators: out-of-fold predictions against
measured accuracy (grouped by run, every snapshot) and the forest's feature importances."""

import matplotlib.pyplot as plt
import numpy as np

from mmicl.analysis.regression import FAMILIES, paper_name


def make(df, sweep=None, defaults=None):
    families = [f for f in FAMILIES if not df[(df.family == f) & (df.kind == "prediction")].empty]
    fig, axes = plt.subplots(2, max(len(families), 1), squeeze=False,
                             figsize=(4.6 * max(len(families), 1), 7.4), constrained_layout=True)
    for j, family in enumerate(families):
        fam = df[(df.family == family) & (df.data == "all")]
        pred = fam[fam.kind == "prediction"]
        ax = axes[0, j]
        ax.scatter(pred.measured, pred.predicted, s=6, alpha=0.5)
        ax.plot([0, 1], [0, 1], color="k", linewidth=0.7)
        r2 = fam[fam.kind == "r2"]
        title = f"{family}: out-of-fold predictions"
        if not r2.empty:
            title += f"\nR² = {r2.value.iloc[0]:.2f} ± {r2['std'].iloc[0]:.2f} (grouped CV)"
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("measured IC accuracy")
        ax.set_ylabel("predicted IC accuracy")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        imp = fam[fam.kind == "importance"].sort_values("value", ascending=False)
        ax = axes[1, j]
        y = np.arange(len(imp))
        ax.barh(y, imp.value)
        ax.set_yticks(y, [paper_name(f) for f in imp.feature], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("impurity importance")
        ax.set_title(f"{family}: feature importances", fontsize=9)
    fig.suptitle("Random forest on circuit indicators (every snapshot of every run)", fontsize=10)
    return fig
