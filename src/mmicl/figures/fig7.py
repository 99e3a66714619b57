"""Fig. 7: previous-token (PH) and induction (IH) head scores of Qwen2.5-VL and of its text
backbone Qwen2.5, as layer x head maps with the top heads marked, and the overlap of their top-k
sets. The paper: 4 of the MLLM's top-5 PH heads are among the LLM's top-10.

Reads the concatenated head tables of `mmicl.vlm.pipeline.score_heads` (model, kind, layer,
head, score, rank, tiny). A table made from a tiny random checkpoint says so in the title: its
maps and overlaps show that the pipeline runs, not what Qwen2.5-VL does.
"""

import matplotlib.pyplot as plt

from mmicl.vlm.heads import OVERLAP_KS, overlap_table, rankings_from_rows

MODEL_TITLES = {"mllm": "Qwen2.5-VL (image prompts)", "llm": "Qwen2.5 (text-only prompts)"}
KIND_TITLES = {"ph": "previous-token score", "ih": "induction score"}


def tiny_note(df) -> str:
    return " - TINY RANDOM MODEL, not Qwen2.5-VL results" if "tiny" in df and df.tiny.any() else ""


def overlaps(df):
    """Top-k overlaps of the two models' rankings (the table beside the maps)."""
    return overlap_table(rankings_from_rows(df, "mllm", max(OVERLAP_KS)),
                         rankings_from_rows(df, "llm", max(OVERLAP_KS)))


def make(df, sweep, defaults):
    models = [m for m in MODEL_TITLES if m in set(df.model)]
    fig = plt.figure(figsize=(4.6 * len(models) + 3.2, 7.4), constrained_layout=True)
    grid = fig.add_gridspec(2, len(models) + 1, width_ratios=[1] * len(models) + [0.75])
    for i, kind in enumerate(KIND_TITLES):
        for j, model in enumerate(models):
            part = df[(df.model == model) & (df.kind == kind)]
            mat = part.pivot(index="layer", columns="head", values="score").sort_index()
            ax = fig.add_subplot(grid[i, j])
            im = ax.imshow(mat.to_numpy(dtype=float), aspect="auto", origin="lower",
                           cmap="viridis")
            for rank_max, marker, label in ((5, "*", "top 5"), (10, "o", "top 6-10")):
                top = part[(part["rank"] <= rank_max) & (part["rank"] > rank_max - 5)]
                ax.scatter(top["head"], top["layer"], marker=marker, s=55, facecolors="none"
                           if marker == "o" else "red", edgecolors="red", label=label)
            ax.set_xticks(range(0, mat.shape[1], max(1, mat.shape[1] // 8)))
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_title(f"{MODEL_TITLES[model]}: {KIND_TITLES[kind]}", fontsize=8)
            fig.colorbar(im, ax=ax, shrink=0.8)
            if i == 0 and j == 0:
                ax.legend(fontsize=6, loc="upper right")
    if len(models) == 2:
        ax = fig.add_subplot(grid[:, -1])
        ax.axis("off")
        table = overlaps(df)
        cells = [[r.kind.upper(), r.k, f"{r.overlap}/{r.available}", f"{r.a_top_in_b}/{r.a_top}"]
                 for r in table.itertuples()]
        t = ax.table(cellText=cells, colLabels=["kind", "k", "top-k\noverlap",
                                                "MLLM top-5\nin LLM top-k"],
                     colWidths=[0.2, 0.14, 0.3, 0.36], loc="center")
        t.auto_set_font_size(False)
        t.set_fontsize(7)
        t.scale(1, 2.0)
        ax.set_title("paper: PH 4 of MLLM top-5 in LLM top-10", fontsize=8)
    fig.suptitle(f"Fig. 7: PH and IH heads, MLLM vs LLM{tiny_note(df)}", fontsize=10)
    return fig
