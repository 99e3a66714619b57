"""Batched multi-run training: a *cohort* of runs with one model shape trained as one stacked model.

Runs that share their model configuration (seeds of one grid point, or Stage-1 grid points that
differ only in data parameters K, B, eps, alpha, ...) are trained together in one process: every
parameter is stored once as a stacked tensor (M, *shape) over the M members, and one forward /
backward / optimizer step updates all of them with batched matmuls (`torch.bmm`) instead of M
separate small ones. Nothing couples the members:

* each member keeps its own world, sequence spec, evaluation sets and data generator, seeded exactly
  as `train.fit` seeds it, so it sees exactly the batches it would see alone;
* the loss is the sum over members of each member's mean cross-entropy over its own batch, so
  member i's gradient is exactly its solo gradient;
* SGD / Adam / AdamW (with their L2 or decoupled weight decay) are elementwise, and `fit` clips no
  gradient, so one optimizer over the stacked parameters is M independent optimizers;
* evaluation, snapshots, attention maps and outputs go through the solo code paths on a solo
  module per member into which the member's current weights are copied.

A member therefore ends with the weights of its solo run up to float rounding (batched and
unbatched matmuls round differently), and writes exactly the files `train.fit` writes.

Usage::

    members = [stage1_member(world, seq, model_cfg, train_cfg, out_dir, seed=s) for s in (0, 1, 2)]
    curves = fit_cohort(members, train_cfg)          # writes model.pt, curve.parquet, ... per member

Two implementations of the stacked forward exist: `backend="bmm"` (hand-written batched weights,
the default; fastest on CPU, plain tensor ops so it runs on any device) and `backend="vmap"`
(`torch.func.functional_call` + `vmap` over the library's own modules; kept as a cross-check and
for benchmarks). Both take the embedding (a parameter-free one-hot block) outside the model so no
host sync happens in the hot loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from mmicl import io, paths
from mmicl.config import STACKED_BACKENDS, TrainConfig, resolve_backend  # noqa: F401
from mmicl.evaluate import evaluate, mean_attention
from mmicl.models.decoder import Decoder, DecoderConfig, rms_normalize, rotate
from mmicl.train import (  # noqa: F401  (the member builders are part of this API)
    Member, Snapshots, code_version, fit_member, is_trained, make_optimizer, stage1_member,
    stage2_member,
)

BACKENDS = STACKED_BACKENDS


# ---------------------------------------------------------------------------------------------
# the stacked model


@dataclass
class StackedBatch:
    """The members' batches stacked on a leading member axis (only what training reads)."""

    inputs: torch.Tensor  # (M, S, T, D)
    pos_offsets: torch.Tensor  # (M, S)
    targets: torch.Tensor  # (M, S)
    m2_inputs: torch.Tensor | None = None  # (M, S, N+1, D2)

    @classmethod
    def stack(cls, batches: Sequence) -> "StackedBatch":
        m2 = getattr(batches[0], "m2_inputs", None)
        return cls(
            inputs=torch.stack([b.inputs for b in batches]),
            pos_offsets=torch.stack([b.pos_offsets for b in batches]),
            targets=torch.stack([b.targets for b in batches]),
            m2_inputs=None if m2 is None else torch.stack([b.m2_inputs for b in batches]),
        )


def _model_config(model: nn.Module):
    return model.cfg


def _decoder_of(model: nn.Module) -> Decoder:
    return model.decoder if hasattr(model, "decoder") else model


class StackedModel:
    """M models of one configuration (Decoder or MultimodalDecoder) as stacked parameters.

    `params[name]` is a leaf tensor (M, *shape) for every parameter `name` of the solo model
    (the solo state-dict key), trainable iff the solo parameter is. `state(i)` is member i's
    state dict in the solo layout.
    """

    def __init__(self, models: Sequence[nn.Module], backend: str = "bmm"):
        if not models:
            raise ValueError("a cohort needs at least one model")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is unknown; expected one of: {', '.join(BACKENDS)}")
        first = models[0]
        for i, m in enumerate(models):
            if type(m) is not type(first) or _model_config(m) != _model_config(first):
                raise ValueError(
                    f"cohort member {i} has model {type(m).__name__}({_model_config(m)}) but "
                    f"member 0 has {type(first).__name__}({_model_config(first)}); a cohort "
                    f"shares one model configuration"
                )
        self.template = first
        self.backend = backend
        self.multimodal = hasattr(first, "decoder")
        self.decoder = _decoder_of(first)
        self.cfg: DecoderConfig = self.decoder.cfg
        self.prefix = "decoder." if self.multimodal else ""
        names = [n for n, _ in first.named_parameters()]
        if set(first.state_dict()) != set(names):
            raise ValueError("the model has persistent buffers; a cohort stacks parameters only")
        self.M = len(models)
        self.params: dict[str, torch.Tensor] = {}
        for name in names:
            ps = [m.get_parameter(name) for m in models]
            trainable = {p.requires_grad for p in ps}
            if len(trainable) != 1:
                raise ValueError(f"parameter {name!r} is trainable in some members only")
            stacked = torch.stack([p.detach() for p in ps]).clone()
            self.params[name] = stacked.requires_grad_(trainable.pop())

    # --- parameters -----------------------------------------------------------------------

    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.params.values() if p.requires_grad]

    def state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights in the solo state-dict layout (compact copies, not views)."""
        return {name: p.detach()[i].clone() for name, p in self.params.items()}

    @torch.no_grad()
    def load_into(self, i: int, model: nn.Module) -> nn.Module:
        """Copy member i's current weights into its solo module (no reallocation)."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name][i])
        return model

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in self.params.items()}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, p in self.params.items():
            p.copy_(state[name])

    # --- forward ---------------------------------------------------------------------------

    def __call__(self, batch: StackedBatch) -> torch.Tensor:
        """Logits (M, S, n_labels) of every member on its own batch."""
        if self.multimodal:
            content = self._combine(batch.inputs, batch.m2_inputs)
        else:
            content = batch.inputs
        x = self._embed(content, batch.pos_offsets)
        if self.backend == "vmap":
            return self._vmap_body(x)
        return self._body(x)

    def _embed(self, content: torch.Tensor, pos_offsets: torch.Tensor) -> torch.Tensor:
        """Decoder.embed over (M, S, T, D): one-hot APE block then content (no bounds check: the
        generators draw offsets in range, and the check would sync the device every step)."""
        n_cols = self.cfg.n_pos_columns
        if not n_cols:
            return content
        T = content.shape[-2]
        columns = pos_offsets.unsqueeze(-1) + torch.arange(T, device=content.device)
        block = F.one_hot(columns, n_cols).to(content.dtype)
        return torch.cat([block, content], dim=-1)

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """nn.Linear with stacked weight (M, out, in) and optional bias (M, out) on x (M, ..., in)."""
        W = self.params[name + ".weight"]
        b = self.params.get(name + ".bias")
        lead = x.shape[1:-1]
        x2 = x.reshape(self.M, -1, x.shape[-1])
        Wt = W.transpose(1, 2)
        y = torch.bmm(x2, Wt) if b is None else torch.baddbmm(b.unsqueeze(1), x2, Wt)
        return y.view(self.M, *lead, W.shape[1])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        y, w = self._normalized(x, name)
        return y if w is None else y * w.view(self.M, *([1] * (x.dim() - 2)), w.shape[-1])

    def _normalized(self, x: torch.Tensor, name: str):
        """(x / rms(x), the norm weight (M, dim) to fold into the next projection, or None), as
        Block does for the solo decoder."""
        if not self.cfg.rms_norm:
            return x, None
        return rms_normalize(x, self.cfg.norm_eps), self.params[name + ".weight"]

    def _weights(self, layer: str, names: Sequence[str], rope: bool, scale=None):
        """Concatenated (M, n*dim, dim) weights of one fused projection. With rope, each of q and
        k also gets its "rotate-half" partner as extra rows: rotate() permutes and negates head
        coordinates, so rotate(W h) = rotate_rows(W) h, and RoPE needs no strided copies.
        scale (M, dim): the input's per-feature scale (RMSNorm weight), folded into W."""
        out = []
        H, hd, impl = self.cfg.n_heads, self.cfg.head_dim, self.cfg.rope_impl
        for name in names:
            W = self.params[layer + name + ".weight"]
            if scale is not None:
                W = W * scale.unsqueeze(1)
            out.append(W)
            if rope and name in ("wq", "wk"):
                heads = W.view(self.M, H, hd, -1).transpose(2, 3)  # rows of each head last
                out.append(rotate(heads, impl).transpose(2, 3).reshape(W.shape))
        return torch.cat(out, dim=1) if len(out) > 1 else out[0]

    def _project(self, x: torch.Tensor, W: torch.Tensor, parts: int) -> list[torch.Tensor]:
        """x (M, S, T, dim) @ W (M, parts*dim, dim)^T, split into `parts` (M, S, T, dim)."""
        M, S, T, d = x.shape
        y = torch.bmm(x.reshape(M, S * T, d), W.transpose(1, 2)).view(M, S, T, parts, -1)
        return y.unbind(3)

    def _attention(self, x, layer: str, mask, rope, last_only: bool, scale=None):
        cfg = self.cfg
        M, S, T, _ = x.shape
        H, hd = cfg.n_heads, cfg.head_dim
        Tq = 1 if last_only else T
        use_rope = rope is not None
        if last_only:  # only the last query feeds the logits: project it alone
            q_parts = self._project(x[:, :, -1:], self._weights(layer, ("wq",), use_rope, scale),
                                    2 if use_rope else 1)
            kv_parts = self._project(x, self._weights(layer, ("wk", "wv"), use_rope, scale),
                                     3 if use_rope else 2)
            parts = list(q_parts) + list(kv_parts)
        else:
            W = self._weights(layer, ("wq", "wk", "wv"), use_rope, scale)
            parts = list(self._project(x, W, 5 if use_rope else 3))
        if use_rope:
            q, q_rot, k, k_rot, v = parts
            cos, sin = (t[:T].unsqueeze(1) for t in rope)  # (T, 1, hd): broadcast over heads
            q = (q.view(M, S, Tq, H, hd) * cos[T - Tq:] + q_rot.view(M, S, Tq, H, hd) * sin[T - Tq:])
            k = k.view(M, S, T, H, hd) * cos + k_rot.view(M, S, T, H, hd) * sin
        else:
            q, k, v = parts
            q, k = q.view(M, S, Tq, H, hd), k.view(M, S, T, H, hd)
        q, k = q.transpose(2, 3), k.transpose(2, 3)  # (M, S, H, T, hd)
        v = v.reshape(M, S, T, H, hd).transpose(2, 3)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd) + mask[..., T - Tq:, :]
        probs = torch.softmax(scores.float(), dim=-1).type_as(q)
        out = (probs @ v).transpose(2, 3).reshape(M, S, Tq, H * hd)
        if cfg.n_heads > 1:
            out = self._linear(out, layer + "wo")
        return out

    def _feed_forward(self, x, layer: str, scale=None):
        W = self._weights(layer, ("w1", "w2"), False, scale)
        b = torch.cat([self.params[layer + "w1.bias"], self.params[layer + "w2.bias"]], dim=1)
        M, S, T, d = x.shape
        y = torch.baddbmm(b.unsqueeze(1), x.reshape(M, S * T, d), W.transpose(1, 2))
        a, g = y.view(M, S, T, 2, -1).unbind(3)
        if self.cfg.mlp_variant == "reference":
            return self._linear(F.silu(a * g), layer + "w3")
        return self._linear(F.silu(a) * g, layer + "w3")

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder.forward after the embedding, for stacked x (M, S, T, dim)."""
        cfg, p = self.cfg, self.prefix
        T = x.shape[-2]
        mask = self.decoder._mask(T, x.device)
        rope = (self.decoder.rope_cos, self.decoder.rope_sin) if cfg.uses_rope else None
        for i in range(cfg.n_layers):
            last_only = i == cfg.n_layers - 1
            layer = f"{p}layers.{i}."
            n, scale = self._normalized(x, layer + "attention_norm")
            attn = self._attention(n, layer + "attention.", mask, rope, last_only, scale)
            h = (x[:, :, -1:] if last_only else x) + attn
            n, scale = self._normalized(h, layer + "ffn_norm")
            x = h + self._feed_forward(n, layer + "feed_forward.", scale)
        return self._linear(self._norm(x[:, :, -1], p + "norm"), p + "out")

    def _combine(self, inputs: torch.Tensor, m2_inputs: torch.Tensor) -> torch.Tensor:
        """MultimodalDecoder.combine over the member axis: projected M2 items into slots 3i+1."""
        M, S, T, _ = inputs.shape
        N = (T - 2) // 3
        z = m2_inputs
        n_linears = len(self.template.projector.linears)
        for j in range(n_linears):
            z = self._linear(z if j == 0 else F.gelu(z), f"projector.linears.{j}")
        slots = torch.cat([torch.arange(N, device=inputs.device) * 3 + 1,
                           torch.tensor([3 * N + 1], device=inputs.device)])
        content = inputs.clone()
        content[:, :, slots] = z.to(content.dtype)
        return content

    def _vmap_body(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import functional_call, vmap

        body = _Body(self.decoder)
        p = self.prefix
        params = {name[len(p):]: t for name, t in self.params.items() if name.startswith(p)}
        return vmap(lambda ps, xs: functional_call(body, ps, (xs,)))(params, x)


class _Body(nn.Module):
    """Decoder.forward after the embedding, on the decoder's own submodules (for vmap)."""

    def __init__(self, decoder: Decoder):
        super().__init__()
        self.layers, self.norm, self.out = decoder.layers, decoder.norm, decoder.out
        self.decoder = [decoder]  # not a submodule: its parameters are not this module's

    def forward(self, x):
        dec = self.decoder[0]
        T = x.shape[1]
        mask = dec._mask(T, x.device)
        rope = (dec.rope_cos, dec.rope_sin) if dec.cfg.uses_rope else None
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x, _ = layer(x, mask, rope, None, last_only=(i == last))
        return self.out(self.norm(x[:, -1]))


def stacked_loss(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum over members of each member's mean cross-entropy, per-member losses (M,))."""
    M, S, C = logits.shape
    per_member = F.cross_entropy(logits.reshape(M * S, C), targets.reshape(M * S),
                                 reduction="none").view(M, S).mean(1)
    return per_member.sum(), per_member


# ---------------------------------------------------------------------------------------------
# the training loop


class _Windows:
    """Per-member running train loss / accuracy between evaluations, on the device."""

    def __init__(self, M: int, device):
        self.M, self.device = M, device
        self.reset()

    def reset(self):
        self.loss = torch.zeros(self.M, device=self.device)
        self.correct = torch.zeros(self.M, device=self.device, dtype=torch.long)
        self.count = 0

    def add(self, losses, logits, targets):
        S = targets.shape[1]
        self.loss += losses.detach() * S
        self.correct += (logits.detach().argmax(-1) == targets).sum(1)
        self.count += S

    def summary(self, i: int) -> dict | None:
        if not self.count:
            return None
        return {"loss": self.loss[i].item() / self.count,
                "accuracy": self.correct[i].item() / self.count}

    def state(self):
        return {"loss": self.loss, "correct": self.correct, "count": self.count}

    def load(self, state):
        self.loss, self.correct, self.count = state["loss"], state["correct"], state["count"]


def cohort_fingerprint(members: Sequence[Member], train_cfg: TrainConfig, backend: str) -> str:
    text = json.dumps({"members": [m.fingerprint for m in members], "train": asdict(train_cfg),
                       "backend": backend}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_members(members: Sequence[Member], train_cfg: TrainConfig) -> None:
    if not members:
        raise ValueError("a cohort needs at least one member")
    dirs = [m.out_dir.resolve() for m in members]
    if len(set(dirs)) != len(dirs):
        raise ValueError("two cohort members write to the same out_dir")
    for i, m in enumerate(members):
        train = m.spec.get("train")
        if train is not None and train != asdict(train_cfg):
            raise ValueError(
                f"cohort member {i} ({m.out_dir}) was built with train config {train}, "
                f"but the cohort trains with {asdict(train_cfg)}; a cohort shares one"
            )
        if m.spec.get("device") != members[0].spec.get("device"):
            raise ValueError("cohort members are on different devices")


def fit_cohort(
    members: Sequence[Member],
    train_cfg: TrainConfig,
    device: str | None = None,
    attention_sequences: int = 256,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    backend: str = "bmm",
    write: bool = True,
) -> list[pd.DataFrame]:
    """Train every member together; per member, write (unless write=False) exactly the files
    `train.fit` writes for its solo run into member.out_dir, and return the learning curves.

    checkpoint: a file for the whole cohort's resume state (weights, optimizer, every generator,
    curves, snapshots), written every `checkpoint_every` steps and removed at the end; a rerun
    with the same members resumes from it and ends as an uninterrupted run would. None = no
    checkpointing (a killed cohort starts again).
    """
    members = list(members)
    _check_members(members, train_cfg)
    device = device if device is not None else members[0].spec.get("device", "cpu")
    M = len(members)
    stack = StackedModel([m.model for m in members], backend=backend)
    optimizer = make_optimizer(stack.trainable(), train_cfg)
    gens = [torch.Generator(device=device).manual_seed(m.seeds.train_data) for m in members]
    windows = _Windows(M, device)
    rows: list[list[dict]] = [[] for _ in members]
    snapshots = [Snapshots() for _ in members]
    snapshot_at = set(train_cfg.snapshot_iterations())
    step = 0
    fingerprint = cohort_fingerprint(members, train_cfg, backend)

    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.exists():
        state = io.load_torch(checkpoint, map_location=device)
        if state.get("fingerprint") == fingerprint:
            stack.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            for g, s in zip(gens, state["data_gens"]):
                g.set_state(s.cpu() if str(device) == "cpu" else s)
            windows.load(state["window"])
            rows = [list(r) for r in state["rows"]]
            snapshots = [Snapshots.from_dict(s, str(checkpoint)) for s in state["snapshots"]]
            step = int(state["step"])
            print(f"resuming cohort of {M} from step {step} ({checkpoint})", file=sys.stderr)
        else:
            print(f"ignoring {checkpoint}: it belongs to a different cohort", file=sys.stderr)

    def log_eval(iteration: int) -> None:
        for i, m in enumerate(members):
            model = stack.load_into(i, m.model)
            for name, res in evaluate(model, m.test_sets, m.n_labels).items():
                rows[i].append({"iteration": iteration, "split": name, **res})
            train = windows.summary(i)
            if train is not None:
                rows[i].append({"iteration": iteration, "split": "train", **train})
        windows.reset()

    def add_snapshots(iteration: int) -> None:
        for i, m in enumerate(members):
            snapshots[i].add(stack.load_into(i, m.model), iteration)

    if step == 0:
        log_eval(0)
        add_snapshots(0)
    started = time.perf_counter()
    bar = tqdm(total=train_cfg.iterations, initial=step, disable=not progress, mininterval=5,
               desc=f"cohort of {M}", file=sys.stderr)
    while step < train_cfg.iterations:
        batch = StackedBatch.stack([m.sample(g) for m, g in zip(members, gens)])
        logits = stack(batch)
        loss, losses = stacked_loss(logits, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        windows.add(losses, logits, batch.targets)
        step += 1
        bar.update(1)
        if step % train_cfg.eval_every == 0 or step == train_cfg.iterations:
            log_eval(step)
        if step in snapshot_at:
            add_snapshots(step)
        if (checkpoint is not None and step % train_cfg.checkpoint_every == 0
                and step < train_cfg.iterations):
            io.save_torch({
                "fingerprint": fingerprint, "step": step, "model": stack.state_dict(),
                "optimizer": optimizer.state_dict(), "data_gens": [g.get_state() for g in gens],
                "window": windows.state(), "rows": rows,
                "snapshots": [s.to_dict() for s in snapshots],
            }, checkpoint)
    bar.close()
    elapsed = time.perf_counter() - started

    curves = []
    for i, m in enumerate(members):
        model = stack.load_into(i, m.model)
        curve = pd.DataFrame(rows[i])
        curves.append(curve)
        if write:
            _write_outputs(m, model, curve, snapshots[i], attention_sequences, elapsed, i, M)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return curves


def _write_outputs(m: Member, model: nn.Module, curve: pd.DataFrame, snapshots: Snapshots,
                   attention_sequences: int, elapsed: float, index: int, size: int) -> None:
    """The files train.fit writes, plus a "cohort" entry in config.json."""
    out_dir = m.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    final = curve[curve.iteration == curve.iteration.max()].copy()
    attention = mean_attention(model, m.test_sets["IC"], attention_sequences)
    attention.insert(0, "split", "IC")
    m.save_test_sets(m.test_sets, out_dir / "testsets.pt")
    io.save_torch(model.state_dict(), out_dir / "model.pt")
    io.save_torch(snapshots.to_dict(), out_dir / "snapshots.pt")
    io.write_parquet(curve, out_dir / "curve.parquet")
    io.write_parquet(final, out_dir / "final.parquet")
    io.write_parquet(attention, out_dir / "attention.parquet")
    io.write_json({
        **m.spec, "fingerprint": m.fingerprint, "code_version": code_version(),
        "num_params": sum(p.numel() for p in model.parameters()),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train_seconds_this_process": round(elapsed, 3),
        "cohort": {"size": size, "index": index},
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "command": sys.argv,
    }, out_dir / "config.json")


def train_stage1_cohort(runs: Sequence[dict], model_cfg: DecoderConfig, train_cfg: TrainConfig,
                        test_set_size: int = 1000, attention_sequences: int = 256,
                        device: str = "cpu", progress: bool = True,
                        checkpoint: str | Path | None = None,
                        backend: str = "bmm") -> list[pd.DataFrame]:
    """Convenience: `runs` are dicts with keys world, seq, out_dir, seed and optional meta; every
    run uses `model_cfg` and `train_cfg`. Equivalent to calling train.train_run once per run."""
    members = [stage1_member(r["world"], r["seq"], model_cfg, train_cfg, r["out_dir"], r["seed"],
                             test_set_size=test_set_size, device=device, meta=r.get("meta"))
               for r in runs]
    return fit_cohort(members, train_cfg, device=device, attention_sequences=attention_sequences,
                      progress=progress, checkpoint=checkpoint, backend=backend)


# ---------------------------------------------------------------------------------------------
# cohorts in the workflow: planning, reuse of trained members, one entry point per cohort job

def _touch_outputs(out_dir: Path) -> None:
    for name in paths.RUN_FILES:
        os.utime(out_dir / name)


def _remove_outputs(out_dir: Path) -> None:
    """A member about to be (re)trained: old outputs go first, so a failure leaves none behind
    that could pass for the new run (its resume.pt, if any, is kept and resumed from)."""
    for name in paths.RUN_FILES:
        (out_dir / name).unlink(missing_ok=True)


def train_cohort(
    builders: Sequence,
    backend: str = "auto",
    device: str = "cpu",
    attention_sequences: int = 256,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    reuse: bool = True,
) -> dict[str, list[Path]]:
    """Train the members of one workflow cohort; `builders` are callables returning a `Member`.

    A member whose folder already holds its complete outputs for the same spec and training code
    (`train.is_trained`) is not retrained (reuse=True): its files are only touched, so a cohort
    rerun because one member changed retrains that member alone. Backend `sequential` builds and
    trains the members one after the other (each exactly its solo run, with its own resume.pt);
    `bmm` / `vmap` train the stale members as one stacked model (`fit_cohort`, resumable from
    `checkpoint`). Returns the out_dirs trained and reused.
    """
    backend = resolve_backend(backend, device)
    done: dict[str, list[Path]] = {"trained": [], "reused": []}

    def fresh(member: Member) -> bool:
        if reuse and is_trained(member.out_dir, member.fingerprint):
            _touch_outputs(member.out_dir)
            done["reused"].append(member.out_dir)
            print(f"{member.out_dir}: up to date (same spec and training code), not retrained",
                  file=sys.stderr)
            return True
        _remove_outputs(member.out_dir)
        return False

    if backend == "sequential":
        for build in builders:
            member = build()
            if not fresh(member):
                fit_member(member, device, attention_sequences, progress)
                done["trained"].append(member.out_dir)
        return done
    stale = [m for m in (build() for build in builders) if not fresh(m)]
    if stale:
        fit_cohort(stale, stale[0].train_cfg, device=device,
                   attention_sequences=attention_sequences, progress=progress,
                   checkpoint=checkpoint, backend=backend)
        done["trained"] += [m.out_dir for m in stale]
    return done
