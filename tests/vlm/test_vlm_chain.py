"""The whole Section-5 chain on the tiny pair and the fixture, through the orchestration functions
the workflow calls: outputs, their formats, the figures, and its CPU cost (< 2 minutes)."""

import json
import time

import matplotlib
import pandas as pd
import pytest

pytest.importorskip("peft")
matplotlib.use("Agg")

from mmicl.vlm import pipeline  # noqa: E402


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    cpu = time.process_time()
    times = pipeline.smoke(root)
    return root, times, time.process_time() - cpu


@pytest.mark.slow
def test_chain_outputs_and_cost(chain):
    root, times, cpu = chain
    assert cpu < 120, times  # the CI budget for the Section-5 smoke chain
    heads = pd.concat([pd.read_parquet(root / f"heads_{m}.parquet") for m in ("mllm", "llm")])
    assert len(heads) == 2 * 2 * 36 * 16 and heads.tiny.all()
    assert set(heads.prompt) == {"image", "text"} and heads.n_examples.eq(8).all()
    for model in ("mllm", "llm"):
        top = json.loads((root / f"top_{model}.json").read_text())
        for kind in ("ph", "ih"):
            ranked = heads[(heads.model == model) & (heads.kind == kind)].sort_values("rank")
            assert [(h["layer"], h["head"]) for h in top[f"{kind}_heads"]] == \
                list(zip(ranked.layer[:20], ranked["head"][:20]))
    overlap = pd.read_parquet(root / "overlap.parquet")
    assert overlap.k.tolist() == [5, 10, 20] * 2

    knockout = pd.read_parquet(root / "knockout.parquet").set_index("condition")
    assert list(knockout.index) == ["baseline", "ph", "ih", "both", "random"]
    assert knockout.n_eval.eq(12).all() and knockout.n_heads.tolist() == [0, 5, 5, 10, 5]
    for condition in ("ph", "ih", "both", "random"):
        report = json.loads((root / f"knockout_{condition}_results.json").read_text())
        assert set(report) == {"knockout_type", "heads", "baseline", "knockout", "diff",
                               "num_eval"}
        assert report["num_eval"] == 12
        assert report["knockout"]["accuracy"] == knockout.accuracy[condition]
    top = json.loads((root / "top_mllm.json").read_text())
    assert knockout.heads["ph"].split() == [f"L{h['layer']}/H{h['head']}"
                                            for h in top["ph_heads"][:5]]

    lora = pd.read_parquet(root / "lora.parquet")
    assert lora.step.tolist() == [0, 3, 6] and lora.tiny.all()
    assert lora.trainable_params.iloc[0] == 921_600  # r 16 on q/k/v/o of 36 layers
    assert (root / "lora_adapter" / "adapter_model.safetensors").is_file()
    assert not (root / "resume.pt").exists()


def test_figures_flag_the_tiny_model(chain):
    from mmicl.figures import fig7, fig8, table3

    root = chain[0]
    heads = pd.concat([pd.read_parquet(root / f"heads_{m}.parquet") for m in ("mllm", "llm")])
    knockout = pd.read_parquet(root / "knockout.parquet")
    lora = pd.read_parquet(root / "lora.parquet")
    for module, df in ((fig7, heads), (table3, knockout), (fig8, lora)):
        fig = module.make(df, {}, {})
        assert "TINY RANDOM MODEL" in fig._suptitle.get_text() if fig._suptitle else \
            "TINY RANDOM MODEL" in fig.axes[0].get_title()
        matplotlib.pyplot.close(fig)
    rows = table3.table(knockout, {}, {})
    assert rows.paper_accuracy.tolist()[:4] == [0.74, 0.65, 0.58, 0.56]
    md = table3.markdown(rows)
    assert md.startswith("Table 3 (tiny random model") and "| no knockout |" in md
    assert fig7.overlaps(heads).set_index(["kind", "k"]).overlap.between(0, 20).all()


def test_killed_finetune_leaves_no_output_and_resumes(chain, tmp_path):
    root = chain[0]
    mllm = root / "models" / "mllm"
    kwargs = dict(model_path=mllm, heads_json=root / "top_mllm.json",
                  data_root=root / "VL-ICL", out_parquet=tmp_path / "lora.parquet",
                  out_adapter=tmp_path / "adapter", n_train=4, n_eval=1, steps=3, eval_every=3,
                  checkpoint_every=1, lr=1e-3, lora_rank=2, gradient_checkpointing=False)
    pipeline.finetune(**kwargs, stop_after=2)
    assert (tmp_path / "resume.pt").is_file()
    assert not (tmp_path / "lora.parquet").exists() and not (tmp_path / "adapter").exists()
    resumed = pipeline.finetune(**kwargs)
    assert not (tmp_path / "resume.pt").exists()
    assert resumed.step.tolist() == [0, 3] and (tmp_path / "adapter").is_dir()
    straight = pipeline.finetune(**{**kwargs, "out_parquet": tmp_path / "b" / "lora.parquet",
                                    "out_adapter": tmp_path / "b" / "adapter"})
    cols = [c for c in straight.columns if "seconds" not in c]
    pd.testing.assert_frame_equal(resumed[cols], straight[cols])
