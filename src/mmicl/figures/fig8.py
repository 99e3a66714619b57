"""Fig. 8: LoRA fine-tuning of Qwen2.5-VL on Open-MI: accuracy and CLA, the mean PH and IH
scores of the tracked top-5 heads, and the training loss, against the step. The paper: IH
strength rises with accuracy while PH strength stays flat and CLA stays at 1 (Stage 2 of the
synthetic study). Reads the rows of `mmicl.vlm.pipeline.finetune`; a run on a tiny random
checkpoint says so in the title.
"""

import matplotlib.pyplot as plt

from mmicl.figures.fig7 import tiny_note


def make(df, sweep, defaults):
    df = df.sort_values("step")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.3), constrained_layout=True)
    ax = axes[0]
    ax.plot(df.step, df.eval_accuracy, marker="o", label="accuracy")
    ax.plot(df.step, df.eval_cla, marker="s", label="CLA")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Open-MI evaluation", fontsize=9)
    ax = axes[1]
    for kind, label in (("ph", "PH strength"), ("ih", "IH strength")):
        line, = ax.plot(df.step, df[f"avg_{kind}_strength"], marker="o",
                        label=f"{label} (top-5 mean)")
        for col in (c for c in df.columns if c.startswith(f"{kind}_L")):
            ax.plot(df.step, df[col], color=line.get_color(), alpha=0.25, lw=0.8)
    ax.set_title("tracked heads (thin: single heads)", fontsize=9)
    ax = axes[2]
    ax.plot(df.step, df.train_loss, marker=".", label="last step")
    ax.plot(df.step, df.train_loss_mean, marker=".", label="mean since last eval")
    ax.set_title("training loss (answer + EOS tokens)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("LoRA step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Fig. 8: LoRA dynamics{tiny_note(df)}", fontsize=10)
    return fig
