"""Many runs of one model shape as one stacked model: the library's own modules, evaluated with
`torch.func.functional_call` under `vmap` over a leading member axis.

Trainable parameters are stacked (M, *shape) leaf tensors, one slice per member; a frozen
parameter that is bit-identical in every member (a shared pretrained encoder, the decoder of
members that start from the same checkpoint) is held once and broadcast (vmap in_dims=None), a
frozen one that differs is stacked without gradient. Buffers (BatchNorm statistics) are stacked
like parameters. Nothing couples the members: each draws its own batches, the loss is the sum of
the members' mean losses (so each gradient is its solo gradient), and Adam/AdamW/SGD are
elementwise, so one optimizer over the stacked tensors is M independent optimizers.

On a CPU this is not faster than training the members one after the other (benchmarks/README.md:
the matrices stay 64-128 wide), which is why the workflow's `auto` backend stacks only on an
accelerator, where one run leaves the device mostly idle.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch.func import functional_call, vmap

from mmicl.analysis.evaluate import model_inputs


def _config(model: nn.Module):
    return getattr(model, "cfg", None)


class Stack:
    """M models of one type and configuration as stacked tensors, run with vmap."""

    def __init__(self, models: Sequence[nn.Module]):
        if not models:
            raise ValueError("a cohort needs at least one model")
        first = models[0]
        for i, m in enumerate(models):
            if type(m) is not type(first) or _config(m) != _config(first):
                raise ValueError(f"cohort member {i} has model {type(m).__name__}({_config(m)}) "
                                 f"but member 0 has {type(first).__name__}({_config(first)}); a "
                                 f"cohort shares one model configuration")
        self.template = first
        self.M = len(models)
        self.params: dict[str, torch.Tensor] = {}
        self.shared: dict[str, torch.Tensor] = {}
        for name, p0 in first.named_parameters():
            ps = [m.get_parameter(name) for m in models]
            trainable = {p.requires_grad for p in ps}
            if len(trainable) != 1:
                raise ValueError(f"parameter {name!r} is trainable in some members only")
            if not p0.requires_grad and all(torch.equal(p.detach(), p0.detach()) for p in ps):
                self.shared[name] = p0.detach()
            else:
                stacked = torch.stack([p.detach() for p in ps]).clone()
                self.params[name] = stacked.requires_grad_(p0.requires_grad)
        persistent = set(first.state_dict())
        self.buffers = {name: torch.stack([m.get_buffer(name) for m in models]).clone()
                        for name, _ in first.named_buffers() if name in persistent}

        def call(params, shared, buffers, args):
            return functional_call(self.template, ({**params, **shared, **buffers}), args,
                                   {"validate": False}, strict=False)

        self._call = vmap(call, in_dims=(0, None, 0, 0), randomness="different")

    def trainable(self) -> list[torch.Tensor]:
        return [p for p in self.params.values() if p.requires_grad]

    def logits(self, batches: Sequence) -> torch.Tensor:
        """(M, S, n_labels): every member's logits on its own batch."""
        args = tuple(torch.stack(parts) for parts in zip(*(model_inputs(b) for b in batches)))
        return self._call(self.params, self.shared, self.buffers, args)

    @torch.no_grad()
    def load_into(self, i: int, model: nn.Module) -> nn.Module:
        """Copy member i's current weights into its solo module (no reallocation)."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name][i] if name in self.params else self.shared[name])
        for name, b in self.buffers.items():
            model.get_buffer(name).copy_(b[i])
        return model

    @torch.no_grad()
    def restore(self, i: int, state: dict) -> None:
        """Put member i's weights back to `state` (a member that stopped training keeps the
        weights it stopped with while the others train on)."""
        for name, t in self.params.items():
            t[i] = state[name]
        for name, b in self.buffers.items():
            b[i] = state[name]

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{k: v.detach() for k, v in self.params.items()}, **self.buffers}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for name, t in {**self.params, **self.buffers}.items():
            t.copy_(state[name])

