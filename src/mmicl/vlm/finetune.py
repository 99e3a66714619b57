"""Fig. 8: LoRA fine-tuning of Qwen2.5-VL on Open-MI, tracking its top PH and IH heads.

As the authors' `mllm_finetune.py` (PAPER_PROTOCOL §5.4): LoRA (r 16, alpha 32, dropout 0.05,
bias none) on q/k/v/o_proj, which lands on the language model only (the vision blocks' attention
is a fused `qkv`/`proj`); AdamW over the trainable parameters, no schedule; each step one training
example drawn by `np.random.RandomState(sample_seed)`; the text is prompt + answer + EOS and the
loss the mean token cross-entropy over the answer + EOS tokens only (prompt length = total -
len(tokens(answer + EOS)), the reference's rule). Evaluation at step 0, every `eval_every` steps
and at the last step: accuracy and CLA of the greedy next token, and the PH / IH scores (§5.2,
`mmicl.vlm.heads`) of the tracked top-5 heads with their averages.

Differences from the reference, each for a reason:
* The step-0 row has train_loss NaN (the reference logs 0.0, a loss that was never measured);
  rows also carry the mean loss since the previous evaluation beside the reference's last-step
  loss.
* Kill-and-resume as every training job here: the full state (LoRA weights, optimizer, both RNGs,
  rows so far) is saved every `checkpoint_every` steps; a rerun continues from it and ends
  identical to an uninterrupted run. LoRA initialisation and dropout draw from torch's RNG seeded
  with `init_seed`, so runs are reproducible at all.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmicl import io
from mmicl.vlm import require
from mmicl.vlm.adapter import HFAdapter
from mmicl.vlm.heads import score_prompts
from mmicl.vlm.prompt import Prompt, answer_first_token, first_tokens


@dataclass(frozen=True)
class LoraSettings:
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    lr: float = 2e-5
    steps: int = 500
    eval_every: int = 25
    checkpoint_every: int = 25  # full training state to the resume file
    sample_seed: int = 0  # RandomState drawing the training example of each step (reference: 0)
    init_seed: int = 0  # torch seed for LoRA init and dropout (the reference leaves it unseeded)
    gradient_checkpointing: bool = True  # the reference's memory saving; off is faster on CPU

    def fingerprint(self, *extra) -> str:
        text = json.dumps([asdict(self), *map(str, extra)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def add_lora(model, settings: LoraSettings):
    """The model wrapped with peft LoRA adapters (initialised from torch's RNG at init_seed)."""
    require("peft")
    from peft import LoraConfig, get_peft_model

    if settings.gradient_checkpointing:  # non-reentrant: no input-grad hook needed under LoRA
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    torch.manual_seed(settings.init_seed)
    return get_peft_model(model, LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.targets), bias="none", task_type="CAUSAL_LM"))


def answer_loss(model, adapter: HFAdapter, prompt: Prompt) -> torch.Tensor:
    """Mean next-token cross-entropy over the answer + EOS tokens of a training prompt."""
    if prompt.completion_tokens <= 0:
        raise ValueError("answer_loss needs a prompt built with with_answer=True")
    inputs = adapter.inputs(prompt.inputs())
    logits = model(**inputs, use_cache=False).logits[0, :-1].float()
    per_token = F.cross_entropy(logits, inputs["input_ids"][0, 1:], reduction="none")
    start = max(prompt.length - prompt.completion_tokens - 1, 0)
    return per_token[start:].mean()


def evaluate(adapter: HFAdapter, prompts: Sequence[Prompt], tokenizer,
             tracked: dict[str, list[tuple[int, int]]]) -> dict:
    """Accuracy, CLA and the tracked heads' PH / IH (the §5.2 averages, IH filter included)."""
    was_training = adapter.model.training
    adapter.model.eval()
    scores = score_prompts(adapter, prompts, tokenizer)
    adapter.model.train(was_training)
    n = scores.n_scored
    correct = sum(scores.predictions[i] == answer_first_token(tokenizer, p.answer)
                  for i, p in enumerate(prompts) if i in scores.predictions)
    cla = sum(scores.predictions[i] in first_tokens(tokenizer, p.demo_answers)
              for i, p in enumerate(prompts) if i in scores.predictions)
    row = {"eval_accuracy": correct / n if n else float("nan"),
           "eval_cla": cla / n if n else float("nan"), "n_eval": n, "n_ih": scores.n_ih}
    for kind, grid in (("ph", scores.ph), ("ih", scores.ih)):
        values = [float(grid[layer, h]) for layer, h in tracked[kind]]
        row[f"avg_{kind}_strength"] = float(np.mean(values)) if values else float("nan")
        row |= {f"{kind}_L{layer}_H{h}": v for (layer, h), v in zip(tracked[kind], values)}
    return row


def train_lora(model, train_prompt: Callable[[int], Prompt], n_train: int,
               eval_prompts: Sequence[Prompt], tokenizer,
               tracked: dict[str, list[tuple[int, int]]], settings: LoraSettings = LoraSettings(),
               resume_path: str | Path | None = None, fingerprint: str = "",
               stop_after: int | None = None, log: Callable[[str], None] | None = None
               ) -> pd.DataFrame:
    """Train the LoRA-wrapped `model` (from add_lora) in place; return one row per evaluation.

    train_prompt(i) builds the training prompt (with answer) of training example i.
    resume_path: the state file written every checkpoint_every steps and read on start when its
    fingerprint matches. stop_after: return after that many steps without saving anything (a
    simulated kill, for tests)."""
    require("peft")
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    if n_train < 1:
        raise ValueError(f"n_train={n_train}: need at least one training example")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    adapter = HFAdapter(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=settings.lr)
    sampler = np.random.RandomState(settings.sample_seed)
    rows, losses, step = [], [], 0
    fingerprint = settings.fingerprint(fingerprint)
    resume_path = None if resume_path is None else Path(resume_path)
    if resume_path is not None and resume_path.exists():
        state = io.load_torch(resume_path, map_location=adapter.device)
        if state.get("fingerprint") == fingerprint:
            set_peft_model_state_dict(model, state["lora"])
            optimizer.load_state_dict(state["optimizer"])
            sampler.set_state(_rng_state_in(state["sampler"]))
            torch.set_rng_state(state["torch_rng"].cpu())
            if torch.cuda.is_available() and state.get("cuda_rng"):
                torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
            rows, losses, step = list(state["rows"]), list(state["losses"]), int(state["step"])
            log(f"resuming LoRA fine-tuning from step {step} ({resume_path})")
        else:
            log(f"ignoring {resume_path}: it belongs to a different configuration")

    def eval_row(at: int, loss: float) -> None:
        started = time.perf_counter()
        row = {"step": at, "train_loss": loss,
               "train_loss_mean": float(np.mean(losses)) if losses else float("nan"),
               **evaluate(adapter, eval_prompts, tokenizer, tracked)}
        row["eval_seconds"] = time.perf_counter() - started
        rows.append(row)
        losses.clear()
        log(f"step {at}: accuracy={row['eval_accuracy']:.3f} cla={row['eval_cla']:.3f} "
            f"avg_PH={row['avg_ph_strength']:.4f} avg_IH={row['avg_ih_strength']:.4f}")

    if step == 0:
        eval_row(0, float("nan"))
    model.train()
    while step < settings.steps:
        if stop_after is not None and step >= stop_after:
            return pd.DataFrame(rows)
        prompt = train_prompt(int(sampler.randint(0, n_train)))
        loss = answer_loss(model, adapter, prompt)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(float(loss.detach()))
        if step % settings.eval_every == 0 or step == settings.steps:
            eval_row(step, losses[-1])
        if resume_path is not None and step % settings.checkpoint_every == 0 \
                and step < settings.steps:
            io.save_torch({
                "fingerprint": fingerprint, "step": step,
                "lora": get_peft_model_state_dict(model), "optimizer": optimizer.state_dict(),
                "sampler": _rng_state_out(sampler.get_state()),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "rows": rows, "losses": losses}, resume_path)
    model.eval()
    return pd.DataFrame(rows)


def trainable_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _rng_state_out(state: tuple) -> dict:
    """numpy's RandomState state as tensors and numbers (loadable with weights_only=True)."""
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _rng_state_in(state: dict) -> tuple:
    return (state["name"], state["keys"].cpu().numpy().astype(np.uint32), state["pos"],
            state["has_gauss"], state["cached"])
