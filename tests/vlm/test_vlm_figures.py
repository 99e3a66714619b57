"""Fig. 7, Table 3 and Fig. 8 on synthetic Section-5 tables (no transformers needed): the numbers
drawn are the table's, the top heads are marked where they are, and only a tiny-model table
carries the TINY RANDOM MODEL note. (The real chain's tables: test_vlm_chain.py.)"""

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402

from mmicl.figures import CAPTIONS, VLM_FIGURES, VLM_SOURCES, figure_module  # noqa: E402

LAYERS, HEADS = 36, 16


def heads_table(tiny=False, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("mllm", "llm"):
        for kind in ("ph", "ih"):
            score = rng.random((LAYERS, HEADS))
            order = np.argsort(-score, axis=None)
            rank = np.empty(LAYERS * HEADS, int)
            rank[order] = np.arange(1, LAYERS * HEADS + 1)
            for i, (layer, head) in enumerate(np.ndindex(LAYERS, HEADS)):
                rows.append({"model": model, "kind": kind, "layer": layer, "head": head,
                             "score": score[layer, head], "rank": rank[i], "tiny": tiny})
    return pd.DataFrame(rows)


def knockout_table(tiny=False):
    acc = [0.7, 0.6, 0.5, 0.4, 0.68]  # baseline, ph, ih, both, random
    return pd.DataFrame({
        "condition": ["random", "baseline", "ph", "ih", "both"],  # unsorted on purpose
        "label": ["5 random heads knocked out (control)", "no knockout", "top-5 PH knocked out",
                  "top-5 IH knocked out", "top-5 PH + IH knocked out"],
        "heads": ["L1/H1", "", "L2/H2", "L3/H3", "L2/H2 L3/H3"],
        "accuracy": [acc[4], acc[0], acc[1], acc[2], acc[3]],
        "accuracy_lo": 0.1, "accuracy_hi": 0.9, "cla": 0.9, "n_eval": 50, "n_changed": 3,
        "tiny": tiny})


def lora_table(tiny=False):
    steps = np.array([0, 25, 50])
    return pd.DataFrame({"step": steps, "eval_accuracy": [0.5, 0.6, 0.8], "eval_cla": 1.0,
                         "avg_ph_strength": [0.4, 0.41, 0.4], "avg_ih_strength": [0.1, 0.2, 0.3],
                         "ph_L1_H1": [0.3, 0.3, 0.3], "ih_L2_H2": [0.1, 0.3, 0.5],
                         "train_loss": [np.nan, 2.0, 1.0], "train_loss_mean": [np.nan, 2.5, 1.5],
                         "tiny": tiny})


def test_registered_with_caption_and_sources():
    assert VLM_FIGURES == ("fig7", "table3", "fig8")
    for name in VLM_FIGURES:
        assert name in CAPTIONS and VLM_SOURCES[name]
        assert hasattr(figure_module(name), "make")
    assert hasattr(figure_module("table3"), "markdown")


@pytest.mark.parametrize("tiny", [False, True])
def test_fig7_draws_each_score_map_and_marks_the_top5(tiny):
    df = heads_table(tiny)
    fig = figure_module("fig7").make(df, {}, {})
    assert ("TINY RANDOM MODEL" in fig._suptitle.get_text()) == tiny
    maps = [ax for ax in fig.axes if ax.images]
    assert len(maps) == 4
    for ax, (kind, model) in zip(maps, [(k, m) for k in ("ph", "ih") for m in ("mllm", "llm")]):
        part = df[(df.model == model) & (df.kind == kind)]
        want = part.pivot(index="layer", columns="head", values="score").to_numpy()
        np.testing.assert_array_equal(ax.images[0].get_array(), want)
        stars = ax.collections[0].get_offsets()
        top5 = part[part["rank"] <= 5]
        assert sorted(map(tuple, np.asarray(stars).astype(int).tolist())) == \
            sorted(zip(top5["head"], top5["layer"]))
    plt.close(fig)


def test_table3_rows_in_order_beside_the_paper():
    module = figure_module("table3")
    rows = module.table(knockout_table(), {}, {})
    assert rows.condition.tolist() == ["baseline", "ph", "ih", "both", "random"]
    assert rows.accuracy.tolist() == [0.7, 0.6, 0.5, 0.4, 0.68]
    assert rows.paper_accuracy.tolist()[:4] == [0.74, 0.65, 0.58, 0.56]
    assert pd.isna(rows.paper_accuracy.iloc[4])
    md = module.markdown(rows)
    assert md.startswith("Table 3\n") and "| top-5 IH knocked out | 0.500 [0.100, 0.900]" in md
    fig = module.make(knockout_table(), {}, {})
    ours = [c for c in fig.axes[0].containers if isinstance(c, BarContainer)][0]
    assert [p.get_height() for p in ours] == pytest.approx(rows.accuracy.tolist())
    assert "TINY" not in fig.axes[0].get_title()
    plt.close(fig)
    assert "tiny random model" in module.markdown(module.table(knockout_table(True), {}, {}))


@pytest.mark.parametrize("tiny", [False, True])
def test_fig8_curves_are_the_rows(tiny):
    df = lora_table(tiny)
    fig = figure_module("fig8").make(df, {}, {})
    assert ("TINY RANDOM MODEL" in fig._suptitle.get_text()) == tiny
    lines = {line.get_label(): line for line in fig.axes[0].lines + fig.axes[1].lines}
    np.testing.assert_array_equal(lines["accuracy"].get_ydata(), df.eval_accuracy)
    np.testing.assert_array_equal(lines["IH strength (top-5 mean)"].get_ydata(),
                                  df.avg_ih_strength)
    np.testing.assert_array_equal(lines["PH strength (top-5 mean)"].get_xdata(), df.step)
    plt.close(fig)
