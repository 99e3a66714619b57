"""Section 5 end to end, one function per workflow step; each writes its outputs atomically.

These are what the CLI subcommands and `workflow/rules/vlm.smk` call. Every function takes
keyword arguments only, loads the model from a local checkpoint directory and the data from a
local VL-ICL root (argument, else $VL_ICL_DATA_ROOT), and never downloads. Tables carry a `tiny`
column (the checkpoint was written by `mmicl.vlm.tiny`, random weights) so figures can say so.

    score_heads   -> heads.parquet (every head's PH/IH score and rank) + top_heads.json
    compare_heads -> overlap.parquet (top-k overlaps of the MLLM and LLM rankings)
    run_knockout  -> knockout.parquet + knockout_{ph,ih,both,random}_results.json
    finetune      -> lora.parquet (one row per evaluation) + the LoRA adapter directory
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from mmicl import io, paths
from mmicl.vlm.adapter import HFAdapter, load_model
from mmicl.vlm.finetune import LoraSettings, add_lora, train_lora, trainable_parameters
from mmicl.vlm.heads import (OVERLAP_KS, overlap_table, read_top_heads, score_prompts,
                             tidy_rows, top_heads_dict)
from mmicl.vlm.knockout import CONDITIONS, authors_json, condition_heads, knockout_table
from mmicl.vlm.openmi import load_open_mi
from mmicl.vlm.prompt import DEMO_QUESTION, build_prompt, load_processor
from mmicl.vlm.tiny import is_tiny


def _has_images(model_path) -> bool:
    return (Path(model_path) / "preprocessor_config.json").is_file()


def score_heads(*, model_path: str | Path, out_parquet: str | Path, out_json: str | Path,
                data_root: str | Path | None = None, model_name: str | None = None,
                text_only: bool | None = None, n_shot: int = 2, n_examples: int | None = None,
                seed: int = 0, top_k: int = 20, ph_rows: str = "all", source: str = "auto",
                question: str = DEMO_QUESTION, device: str = "auto", dtype: str = "auto",
                max_pixels: int | None = None) -> pd.DataFrame:
    """PH and IH scores of every head (§5.2). A checkpoint without an image processor is scored
    on the text-only prompt built from query.json (the authors' llm_head_analysis.py).
    n_examples defaults to the authors' 16 (MLLM) / 50 (LLM); model_name to "mllm" / "llm"."""
    started = time.perf_counter()
    text_only = not _has_images(model_path) if text_only is None else text_only
    model_name = model_name or ("llm" if text_only else "mllm")
    n_examples = n_examples or (50 if text_only else 16)
    examples = load_open_mi(data_root, n_shot, n_examples, seed,
                            source="query" if text_only else source, need_real_names=text_only)
    processor = load_processor(model_path, images=not text_only, max_pixels=max_pixels)
    adapter = HFAdapter(load_model(model_path, device, dtype))
    prompts = (build_prompt(processor, ex, text_only, question) for ex in examples)
    scores = score_prompts(adapter, prompts, processor.tokenizer, ph_rows,
                           indices=[ex.index for ex in examples])
    df = tidy_rows(scores, model_name, prompt="text" if text_only else "image",
                   ph_rows=ph_rows, tiny=is_tiny(model_path), model_path=str(model_path),
                   n_shot=n_shot, seed=seed, seconds=time.perf_counter() - started)
    io.write_json(top_heads_dict(scores, top_k), out_json)
    io.write_parquet(df, out_parquet)
    return df


def compare_heads(*, mllm_json: str | Path, llm_json: str | Path,
                  out_parquet: str | Path | None = None, ks=OVERLAP_KS) -> pd.DataFrame:
    """Top-k overlaps of two top_heads.json files (the authors' compare_heads, plus the
    paper's "MLLM top-5 within LLM top-k" count)."""
    import json

    tables = [json.loads(Path(p).read_text()) for p in (mllm_json, llm_json)]
    df = overlap_table(*tables, ks=ks)
    if out_parquet is not None:
        io.write_parquet(df, out_parquet)
    return df


def run_knockout(*, model_path: str | Path, heads_json: str | Path, out_parquet: str | Path,
                 data_root: str | Path | None = None, json_dir: str | Path | None = None,
                 out_examples: str | Path | None = None, n_shot: int = 2, n_eval: int = 50,
                 seed: int = 0, top_k: int = 5, random_seed: int = 0,
                 conditions=CONDITIONS, question: str = DEMO_QUESTION, source: str = "auto",
                 device: str = "auto", dtype: str = "auto",
                 max_pixels: int | None = None) -> pd.DataFrame:
    """Table 3 (§5.3): baseline, top-k PH / IH / both knocked out and a random-heads control,
    on the same n_eval examples. Writes the summary Parquet, the authors' per-type JSON files
    (into json_dir, default the Parquet's folder) and optionally the per-example table."""
    started = time.perf_counter()
    if "baseline" not in conditions:
        raise ValueError(f"conditions={conditions}: the baseline is needed for the differences")
    model = load_model(model_path, device, dtype)
    adapter = HFAdapter(model)
    grid = (adapter.n_layers, adapter.n_heads)
    top = read_top_heads(heads_json, k=None, grid=grid)  # every listed head, for the exclusion
    heads = condition_heads(top, top["ph"] + top["ih"], grid, top_k, random_seed)
    heads = {c: heads[c] for c in conditions}
    examples = load_open_mi(data_root, n_shot, n_eval, seed, source=source)
    processor = load_processor(model_path, max_pixels=max_pixels)
    prompts = [build_prompt(processor, ex, question=question) for ex in examples]
    summary, per_example = knockout_table(adapter, prompts, processor.tokenizer, heads,
                                          indices=[ex.index for ex in examples])
    for key, value in {"tiny": is_tiny(model_path), "model_path": str(model_path),
                       "n_shot": n_shot, "seed": seed, "random_seed": random_seed,
                       "seconds": time.perf_counter() - started}.items():
        summary[key] = value
    json_dir = Path(out_parquet).parent if json_dir is None else Path(json_dir)
    for condition in heads:
        if condition != "baseline":
            io.write_json(authors_json(summary, condition, heads),
                          json_dir / f"knockout_{condition}_results.json")
    if out_examples is not None:
        io.write_parquet(per_example, out_examples)
    io.write_parquet(summary, out_parquet)
    return summary


def finetune(*, model_path: str | Path, heads_json: str | Path, out_parquet: str | Path,
             out_adapter: str | Path, data_root: str | Path | None = None, n_shot: int = 2,
             seed: int = 0, n_train: int = 100, n_eval: int = 16, steps: int = 500,
             eval_every: int = 25, checkpoint_every: int = 25, lr: float = 2e-5,
             lora_rank: int = 16, lora_alpha: int = 32, lora_dropout: float = 0.05,
             gradient_checkpointing: bool = True, top_k: int = 5,
             question: str = DEMO_QUESTION, source: str = "auto", device: str = "auto",
             dtype: str = "auto", max_pixels: int | None = None,
             resume_path: str | Path | None = None, stop_after: int | None = None
             ) -> pd.DataFrame:
    """LoRA dynamics (§5.4). The first n_train + n_eval examples: train = the first n_train,
    eval = the next n_eval (the first n_eval training ones if none are left, as the reference).
    `seed` drives the demonstrations, the step sampler and the LoRA init. The resume file
    defaults to resume.pt beside out_parquet and is deleted once the outputs are written."""
    started = time.perf_counter()
    settings = LoraSettings(lora_rank, lora_alpha, lora_dropout, lr=lr, steps=steps,
                            eval_every=eval_every, checkpoint_every=checkpoint_every,
                            sample_seed=seed, init_seed=seed,
                            gradient_checkpointing=gradient_checkpointing)
    examples = load_open_mi(data_root, n_shot, n_train + n_eval, seed, source=source)
    train, held_out = examples[:n_train], examples[n_train:n_train + n_eval]
    eval_examples = held_out or train[:n_eval]
    processor = load_processor(model_path, max_pixels=max_pixels)
    model = add_lora(load_model(model_path, device, dtype), settings)
    grid = (HFAdapter(model).n_layers, HFAdapter(model).n_heads)
    tracked = read_top_heads(heads_json, k=top_k, grid=grid)
    eval_prompts = [build_prompt(processor, ex, question=question) for ex in eval_examples]
    resume_path = paths.resume_checkpoint(Path(out_parquet).parent) if resume_path is None \
        else Path(resume_path)
    rows = train_lora(
        model, lambda i: build_prompt(processor, train[i], question=question, with_answer=True),
        len(train), eval_prompts, processor.tokenizer, tracked, settings, resume_path,
        fingerprint=f"{Path(model_path).resolve()}|{data_root}|{n_shot}|{n_train}|{n_eval}",
        stop_after=stop_after)
    if stop_after is not None and (rows.empty or rows.step.max() < steps):
        return rows  # simulated kill: nothing written but the resume file
    for key, value in {"tiny": is_tiny(model_path), "model_path": str(model_path),
                       "n_train": len(train), "n_eval_examples": len(eval_examples),
                       "lora_rank": lora_rank, "lora_alpha": lora_alpha, "lr": lr,
                       "trainable_params": trainable_parameters(model), "seed": seed,
                       "held_out_eval": bool(held_out),
                       "seconds_this_process": time.perf_counter() - started}.items():
        rows[key] = value
    save_adapter(model, out_adapter)
    io.write_parquet(rows, out_parquet)
    resume_path.unlink(missing_ok=True)
    return rows


def save_adapter(model, out_dir: str | Path) -> Path:
    """save_pretrained into a temporary sibling, then rename into place: a killed job leaves no
    complete-looking adapter directory."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def smoke(root: str | Path, data_root: str | Path | None = None, n_examples: int = 8,
          n_eval: int = 12, steps: int = 6, eval_every: int = 3) -> dict[str, float]:
    """The whole Section-5 chain on the tiny pair and a fixture under `root`; seconds per step."""
    from mmicl.vlm.openmi import write_fixture
    from mmicl.vlm.tiny import save_tiny_pair

    root = Path(root)
    times, t = {}, time.perf_counter()

    def lap(name):
        nonlocal t
        now = time.perf_counter()
        times[name], t = now - t, now

    data_root = data_root or write_fixture(root / "VL-ICL", n_queries=max(n_eval, 24))
    mllm, llm = save_tiny_pair(root / "models")
    lap("setup")
    for name, path in (("mllm", mllm), ("llm", llm)):
        score_heads(model_path=path, data_root=data_root, n_examples=n_examples,
                    out_parquet=root / f"heads_{name}.parquet", out_json=root / f"top_{name}.json")
        lap(f"score_{name}")
    compare_heads(mllm_json=root / "top_mllm.json", llm_json=root / "top_llm.json",
                  out_parquet=root / "overlap.parquet")
    run_knockout(model_path=mllm, heads_json=root / "top_mllm.json", data_root=data_root,
                 out_parquet=root / "knockout.parquet", n_eval=n_eval)
    lap("knockout")
    finetune(model_path=mllm, heads_json=root / "top_mllm.json", data_root=data_root,
             out_parquet=root / "lora.parquet", out_adapter=root / "lora_adapter",
             n_train=16, n_eval=4, steps=steps, eval_every=eval_every, lr=1e-3,
             gradient_checkpointing=False)
    lap("finetune")
    times["cpu_process_s"] = time.process_time()
    times["threads"] = torch.get_num_threads()
    return times
