"""The encoder and image figures plot the table's numbers: bar heights, baseline line and
heatmap cells are read back from the Axes and compared with means computed from the table."""

import itertools

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer

from mmicl.figures import app_encoders, app_miniimagenet, app_omniglot

DEFAULTS = {"K2": 256, "B": 4, "D2": 64, "eps2": 0.1}


def encoder_table():
    rows = []
    encoders = {"mlp": 0.1, "cnn": 0.2, "transformer": 0.3}
    for (enc, level), pre, fro, seed in itertools.product(encoders.items(), (True, False),
                                                          (True, False), (0, 1)):
        for split in ("IC", "IW", "Test"):
            acc = level + 0.4 * pre + 0.1 * fro + 0.02 * seed + (0.05 if split == "IW" else 0)
            base = {**DEFAULTS, "encoder": enc, "encoder_pretrained": pre, "freeze_encoder": fro,
                    "seed": seed, "split": split}
            rows.append({**base, "accuracy": acc})
            rows.append({**base, "K2": 32, "accuracy": 0.0})  # off the sweep's fixed K2
    for seed, split in itertools.product((0, 1), ("IC", "IW")):
        base = {**DEFAULTS, "encoder": "none", "encoder_pretrained": None,
                "freeze_encoder": None, "seed": seed, "split": split}
        rows += [{**base, "accuracy": 0.6 + 0.1 * seed}, {**base, "K2": 32, "accuracy": 0.0}]
    return pd.DataFrame(rows)


def test_app_encoders_bars_and_baseline_equal_the_table():
    df = encoder_table()
    sweep = {"grid": {"encoder": ["mlp", "cnn", "transformer"],
                      "encoder_pretrained": [True, False], "freeze_encoder": [True, False]},
             "fixed": {"K2": 256}}
    fig = app_encoders.make(df, sweep, DEFAULTS)
    main = df[(df.K2 == 256) & (df.encoder != "none")]
    for ax, split in zip(fig.axes[:2], ("IC", "IW")):
        bars = {c.get_label(): [r.get_height() for r in c] for c in ax.containers
                if isinstance(c, BarContainer)}
        assert list(bars) == [label for _, _, label in app_encoders.VARIANTS]
        for pre, fro, label in app_encoders.VARIANTS:
            part = main[(main.split == split) & (main.encoder_pretrained == pre)
                        & (main.freeze_encoder == fro)]
            expected = [part[part.encoder == e].accuracy.mean()
                        for e in ("mlp", "cnn", "transformer")]
            np.testing.assert_allclose(bars[label], expected)
        (line,) = [ln for ln in ax.lines if ln.get_label() == app_encoders.BASELINE_LABEL]
        base = df[(df.encoder == "none") & (df.split == split) & (df.K2 == 256)].accuracy.mean()
        np.testing.assert_allclose(line.get_ydata(), [base, base])
        assert [t.get_text() for t in ax.get_xticklabels()] == ["MLP", "1-D CNN", "transformer"]


def heatmap_table(source, K2s, Bs=(1, 2, 4)):
    rows = []
    for K2, B, seed, split in itertools.product(K2s, Bs, (0, 1), ("IC", "IW", "Test")):
        acc = np.log2(K2) / 16 + 0.1 * B + 0.01 * seed + (0.2 if split == "IW" else 0)
        rows.append({**DEFAULTS, "m2_data": source, "K2": K2, "B": B, "seed": seed,
                     "split": split, "accuracy": acc})
    return rows


def heatmap_values(ax):
    return np.asarray(ax.images[0].get_array(), dtype=float)


def expected_grid(df, source, split, K2s, Bs):
    part = df[(df.m2_data == source) & (df.split == split)]
    return part.groupby(["B", "K2"]).accuracy.mean().unstack().loc[list(Bs), list(K2s)].to_numpy()


def test_app_omniglot_heatmaps_equal_the_table():
    df = pd.DataFrame(heatmap_table("gaussian", [32, 128, 512])
                      + heatmap_table("glyphs", [32, 64, 96])
                      + heatmap_table("miniimagenet", [32]))
    sweep = {"grid": {"K2": [32, 64], "B": [1, 2, 4]}, "gaussian_K2": [32, 128, 512]}
    fig = app_omniglot.make(df, sweep, DEFAULTS)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4  # gaussian and glyphs rows; Mini-ImageNet is not this figure's
    for ax, (source, K2s, split) in zip(panels, [("gaussian", [32, 128, 512], "IC"),
                                                 ("gaussian", [32, 128, 512], "IW"),
                                                 ("glyphs", [32, 64], "IC"),
                                                 ("glyphs", [32, 64], "IW")]):
        np.testing.assert_allclose(heatmap_values(ax),
                                   expected_grid(df, source, split, K2s, (1, 2, 4)))
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(k) for k in K2s]
        assert [t.get_text() for t in ax.get_yticklabels()] == ["1", "2", "4"]
        assert app_omniglot.M2_SOURCES[source] in ax.get_title()


def test_app_miniimagenet_heatmaps_and_K2_limit():
    df = pd.DataFrame(heatmap_table("gaussian", [32, 64]) + heatmap_table("miniimagenet", [32, 64]))
    sweep = {"grid": {"K2": [32, 64], "B": [2, 4]}}
    fig = app_miniimagenet.make(df, sweep, DEFAULTS)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4
    np.testing.assert_allclose(heatmap_values(panels[2]),
                               expected_grid(df, "miniimagenet", "IC", [32, 64], (2, 4)))
    np.testing.assert_allclose(heatmap_values(panels[1]),
                               expected_grid(df, "gaussian", "IW", [32, 64], (2, 4)))
    with pytest.raises(ValueError, match=r"K2 values \[128\] exceed 64"):
        app_miniimagenet.make(df, {"grid": {"K2": [64, 128], "B": [2, 4]}}, DEFAULTS)
