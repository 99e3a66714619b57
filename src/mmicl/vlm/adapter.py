"""A Hugging Face causal LM (Qwen2.5-VL or Qwen2.5) behind `mmicl.analysis.adapter.ModelAdapter`.

`run` returns the logits at each sequence's last real token and, with eager attention, every
text-decoder layer's attention probabilities as [layer, batch, head, query, key] (Qwen2.5-VL
returns the language model's layers only; GQA's key/value heads are already expanded to the 16
query heads by eager's repeat_kv). `ablate_heads` is the authors' knockout (PAPER_PROTOCOL §5.3):
a forward pre-hook on each affected layer's `self_attn.o_proj` that zeroes the head's slice of the
projection's input at every position, i.e. removes the head's output while leaving its attention
untouched. Unlike the reference, the hook clones its input instead of editing it in place
(MLLM_OFFLINE G5: in-place edits are unsafe under autograd), and the context manager removes the
hooks, so the model is never left modified. Layer and head counts come from the config, never
hard-coded 36/16, so tiny models are analysed by the same code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from mmicl.analysis.adapter import HookSet, ModelOutput, check_heads, check_mode, heads_by_layer
from mmicl.vlm import require

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
LAYER_PATHS = ("model.language_model.layers", "language_model.layers", "model.layers",
               "model.model.layers", "model.model.language_model.layers")
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


def check_checkpoint(path: str | Path) -> Path:
    """A model directory must hold config.json and weights; the error names what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: model path is not a directory; expected a local "
                                f"Hugging Face checkpoint (config.json + *.safetensors)")
    missing = []
    if not (path / "config.json").is_file():
        missing.append("config.json")
    if not any((path / f).is_file() for f in WEIGHT_FILES) and not any(path.glob("*.safetensors")):
        missing.append(f"weights (one of {', '.join(WEIGHT_FILES)})")
    if missing:
        raise FileNotFoundError(f"{path}: model directory lacks {' and '.join(missing)}; expected "
                                f"a Hugging Face checkpoint saved with save_pretrained")
    return path


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype = "auto", device: torch.device | str = "cpu"
                  ) -> torch.dtype:
    """auto: bf16 on a GPU that supports it, else fp16 there (the authors' choice); fp32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        if torch.device(device).type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"dtype={dtype!r}; expected auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def load_model(path: str | Path, device: str | torch.device = "auto",
               dtype: str | torch.dtype = "auto") -> nn.Module:
    """A checkpoint directory as an eager-attention model in eval mode. Qwen2.5-VL / Qwen2-VL
    configs load their conditional-generation class, anything else AutoModelForCausalLM."""
    require("transformers")
    import transformers

    path = check_checkpoint(path)
    model_type = json.loads((path / "config.json").read_text()).get("model_type")
    classes = {"qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
               "qwen2_vl": "Qwen2VLForConditionalGeneration"}
    cls = getattr(transformers, classes.get(model_type, "AutoModelForCausalLM"))
    device = resolve_device(device)
    model = cls.from_pretrained(path, dtype=resolve_dtype(dtype, device),
                                attn_implementation="eager",  # attentions need eager
                                device_map=None if device.type == "cpu" else str(device))
    return model.eval()


def base_model(model: nn.Module) -> nn.Module:
    """The transformers model inside a PEFT wrapper (LoRA layers stay injected in it)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def text_config(model: nn.Module):
    config = base_model(model).config
    return getattr(config, "text_config", None) or config


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The language model's decoder layers: the usual attribute paths first (VL, causal LM,
    PEFT-wrapped), then any ModuleList whose blocks have self_attn.o_proj (the vision tower's
    blocks use attn.qkv/proj, so they never match)."""
    base = base_model(model)
    for path in LAYER_PATHS:
        obj = base
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if _is_decoder_stack(obj):
            return obj
    for _, module in base.named_modules():
        if _is_decoder_stack(module):
            return module
    raise AttributeError(f"{type(base).__name__}: no decoder layers with self_attn.o_proj found "
                         f"(tried {', '.join(LAYER_PATHS)} and a module search)")


def _is_decoder_stack(obj) -> bool:
    return (isinstance(obj, nn.ModuleList) and len(obj) > 0
            and hasattr(getattr(obj[0], "self_attn", None), "o_proj"))


def last_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B,) index of each row's last real token (works for left and right padding)."""
    T = attention_mask.shape[-1]
    return T - 1 - attention_mask.flip(-1).long().argmax(-1)


class HFAdapter:
    """`ModelAdapter` over a transformers model (optionally PEFT-wrapped).

    A batch is a mapping of model inputs: input_ids (B, T) and optionally attention_mask,
    pixel_values and image_grid_thw (what `mmicl.vlm.prompt.Prompt.inputs()` gives).
    """

    def __init__(self, model: nn.Module):
        self.model = model
        config = text_config(model)
        self.n_layers = int(config.num_hidden_layers)
        self.n_heads = int(config.num_attention_heads)
        self.layers = decoder_layers(model)
        if len(self.layers) != self.n_layers:
            raise ValueError(f"config says {self.n_layers} layers but the model has "
                             f"{len(self.layers)} decoder layers")
        width = _in_features(self.layers[0].self_attn.o_proj)
        if width % self.n_heads:
            raise ValueError(f"o_proj.in_features={width} is not a multiple of "
                             f"num_attention_heads={self.n_heads}")
        self.head_dim = width // self.n_heads

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def inputs(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The batch on the model's device; pixel values in the model's dtype."""
        dtype = next(self.model.parameters()).dtype
        out = {}
        for key, value in batch.items():
            if value is None:
                continue
            value = value.to(self.device)
            out[key] = value.to(dtype) if value.is_floating_point() else value
        return out

    @torch.no_grad()
    def run(self, batch: Mapping[str, torch.Tensor], attention: bool = False) -> ModelOutput:
        inputs = self.inputs(batch)
        out = self.model(**inputs, output_attentions=attention, use_cache=False)
        mask = inputs.get("attention_mask")
        if mask is None:
            last = torch.full((inputs["input_ids"].shape[0],), inputs["input_ids"].shape[1] - 1,
                              device=self.device)
        else:
            last = last_positions(mask)
        logits = out.logits[torch.arange(len(last), device=last.device), last].float()
        if not attention:
            return ModelOutput(logits)
        if not out.attentions or out.attentions[0] is None:
            raise RuntimeError("the model returned no attentions; load it with "
                               "attn_implementation='eager' (mmicl.vlm.adapter.load_model does)")
        return ModelOutput(logits, torch.stack(out.attentions))

    def ablate_heads(self, heads: Sequence[tuple[int, int]], mode: str = "zero") -> HookSet:
        """Hooks zeroing each head's o_proj input slice; use as `with adapter.ablate_heads(...)`
        (the hooks are registered on the call and removed when the block exits)."""
        check_mode(mode, ("zero",))
        check_heads(heads, self.n_layers, self.n_heads)
        hooks = HookSet()
        for layer, layer_heads in heads_by_layer(heads).items():
            hooks.add(self.layers[layer].self_attn.o_proj.register_forward_pre_hook(
                _zero_heads_hook(sorted(set(layer_heads)), self.n_heads, self.head_dim)))
        return hooks


def _in_features(module: nn.Module) -> int:
    if hasattr(module, "in_features"):
        return int(module.in_features)
    return int(module.base_layer.in_features)  # PEFT LoRA wrapper


def _zero_heads_hook(heads: list[int], n_heads: int, head_dim: int):
    index = torch.tensor(heads)

    def hook(module, args):
        x = args[0].clone()  # never edit the caller's tensor (G5)
        x.view(*x.shape[:-1], n_heads, head_dim)[..., index.to(x.device), :] = 0
        return (x, *args[1:])

    return hook
