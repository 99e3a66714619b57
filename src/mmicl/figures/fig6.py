"""Fig. 6: circuit indicators through training, next to IC accuracy, for the default unimodal
run (Stage 1) and the default multimodal run (Stage 2). The paper: in Stage 2 PHStrength stays
flat while IndStrength rises with accuracy and CLA stays at 1. A multi-head layer shows its
strongest head."""

import matplotlib.pyplot as plt
import pandas as pd

from mmicl.figures.common import seeds_note

FAMILY_TITLES = {"unimodal": "Stage 1 (unimodal pretraining)",
                 "multimodal": "Stage 2 (multimodal fusion)"}
PANELS = (  # (title, [(indicator, layer or None, label)])
    ("accuracy and copying", [("acc_IC", None, "IC accuracy"), ("acc_IW", None, "IW accuracy"),
                              ("cla", None, "CLA")]),
    ("previous-token strength", [("prev_token_1", 1, "PHStrength$^{(1)}_1$"),
                                 ("prev_token_1", 2, "PHStrength$^{(1)}_2$"),
                                 ("prev_token_2", 1, "PHStrength$^{(2)}_1$")]),
    ("induction", [("induction_strength", 2, "IndStrength$_2$"), ("tla", 2, "TLA$_2$"),
                   ("tla", 1, "TLA$_1$"), ("induction_strength", 1, "IndStrength$_1$")]),
    # which tokens of the matching pairs the prediction row reads: the M1 item, the M2 item or
    # the label (in Stage 2 this tells whether the circuit matches on M1 or on M2)
    ("what the query row reads (layer 2)", [("tiia", 2, "TIIA$_2$ (item)"),
                                            ("tiia_m1", 2, "TIIA$_2$ (M1 item)"),
                                            ("tiia_m2", 2, "TIIA$_2$ (M2 item)"),
                                            ("tila", 2, "TILA$_2$ (label)")]),
)


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Long table family, seed, iteration, series, value: indicators (max over heads) and the
    accuracy columns as series of their own."""
    heads = (df[df.indicator != "cla"]
             .groupby(["family", "seed", "iteration", "indicator", "layer"])["value"].max()
             .reset_index())
    heads["series"] = heads.indicator + "@" + heads.layer.astype(str)
    cla = df[df.indicator == "cla"].assign(series="cla@None")
    acc_cols = [c for c in df.columns if c.startswith("acc_")]
    acc = (df.drop_duplicates(["family", "seed", "iteration"])[
               ["family", "seed", "iteration", *acc_cols]]
           .melt(id_vars=["family", "seed", "iteration"], var_name="series"))
    acc["series"] = acc.series + "@None"
    cols = ["family", "seed", "iteration", "series", "value"]
    return pd.concat([heads[cols], cla[cols], acc[cols]], ignore_index=True)


def make(df, sweep, defaults):
    data = curves(df)
    families = [f for f in FAMILY_TITLES if f in set(df.family)]
    fig, axes = plt.subplots(len(PANELS), len(families), squeeze=False, sharex="col",
                             figsize=(5.2 * len(families), 2.6 * len(PANELS)),
                             constrained_layout=True)
    for j, family in enumerate(families):
        part = data[data.family == family]
        for i, (title, series) in enumerate(PANELS):
            ax = axes[i, j]
            for indicator, layer, label in series:
                s = part[part.series == f"{indicator}@{layer}"]
                if s.empty:
                    continue
                stats = s.groupby("iteration")["value"].agg(["mean", "std"]).fillna(0.0)
                line, = ax.plot(stats.index, stats["mean"], marker=".", label=label)
                ax.fill_between(stats.index, stats["mean"] - stats["std"],
                                stats["mean"] + stats["std"], color=line.get_color(),
                                alpha=0.2, linewidth=0)
            ax.set_title(f"{FAMILY_TITLES[family]}: {title}", fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            if i == len(PANELS) - 1:
                ax.set_xlabel("training iteration")
    fig.suptitle(f"Fig. 6: circuit indicators through training ({seeds_note(df)})", fontsize=10)
    return fig
