"""Tiny random Qwen2.5-VL and Qwen2.5 checkpoints, written to disk like the real ones.

No machine of this project reaches a model hub, so tests and the smoke tier run Section 5 on
random models with the real 3B's head grid (36 layers x 16 query heads, 2 KV heads) but hidden
size 256 (head_dim 16): the authors' head indices (top_heads.json) stay valid and a forward of a
150-token prompt takes ~0.3 s on one CPU thread. They are saved as ordinary Hugging Face
checkpoint directories (config.json, model.safetensors, tokenizer files, chat template,
preprocessor_config.json) so every test goes through the same `from_pretrained(path)` path a real
checkpoint takes. A marker file (`TINY_MARKER`) says the weights are random, and figures made from
them say so.

The tokenizer is a byte-level BPE, as Qwen's, trained with the `tokenizers` library on a fixed
corpus (deterministic; no download): Open-MI's nonce words and real class names become single
tokens, bare ("dax", after the chat template's newline) and space-prefixed ("Ġdax") are different
ids as in Qwen, and any other word falls back to several byte pieces (multi-token answers). Its
chat template is Qwen2-VL's: one `<|vision_start|><|image_pad|><|vision_end|>` per image.

The text model is by default the VLM's own language model copied into a `Qwen2ForCausalLM`
("its text backbone"), so on a text-only prompt the two give the same logits.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from mmicl.vlm import require
from mmicl.vlm.openmi import NONCE_NAMES, REAL_CLASSES

TINY_MARKER = "mmicl_tiny.json"
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
SYSTEM_PROMPT = "Answer the question with a single word or phase."  # sic, VL-ICL's "concise"
CORPUS_WORDS = (
    "system", "user", "assistant", "You", "are", "helpful", "This", "is", "a", "picture", "of",
    "Answer", "the", "question", "with", "single", "word", "or", "phase", *NONCE_NAMES,
    *REAL_CLASSES)
# Qwen2-VL's chat template (images as vision-start / image-pad / vision-end), without tools/video.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass(frozen=True)
class TinySpec:
    n_layers: int = 36  # the 3B's grid, so the authors' (layer, head) indices are valid
    n_heads: int = 16
    n_kv_heads: int = 2
    hidden: int = 256  # head_dim = hidden / n_heads = 16
    intermediate: int = 512
    mrope_section: tuple[int, int, int] = (2, 3, 3)  # must sum to head_dim / 2
    vision_depth: int = 2
    vision_hidden: int = 64
    vision_heads: int = 4
    max_pixels: int = 56 * 56  # a 56 x 56 image -> 4 x 4 patches -> 4 LLM tokens
    init_std: float = 0.02  # Hugging Face's initializer_range

    def __post_init__(self):
        head_dim, rem = divmod(self.hidden, self.n_heads)
        if rem or sum(self.mrope_section) * 2 != head_dim:
            raise ValueError(f"hidden={self.hidden}, n_heads={self.n_heads}: head_dim must be an "
                             f"integer equal to 2 * sum(mrope_section={self.mrope_section})")


def build_tokenizer():
    """The offline byte-level BPE tokenizer (a PreTrainedTokenizerFast), deterministic."""
    require("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = [f"{sep}{w}" for w in CORPUS_WORDS for sep in ("", " ", "\n") for _ in range(20)]
    corpus += [SYSTEM_PROMPT, "This is a picture of a dog. This is a "] * 10
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=2048, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<|im_end|>",
                                                                          "<|endoftext|>")],
        chat_template=CHAT_TEMPLATE, model_max_length=32768)


def _text_config(spec: TinySpec, tokenizer) -> dict:
    return dict(
        vocab_size=len(tokenizer), hidden_size=spec.hidden, intermediate_size=spec.intermediate,
        num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_kv_heads, initializer_range=spec.init_std,
        rms_norm_eps=1e-6,  # the 3B's; the VL and text config classes default differently
        max_position_embeddings=4096, bos_token_id=None,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id)


def save_tiny_vlm(path: str | Path, spec: TinySpec = TinySpec(), seed: int = 0) -> Path:
    """Write a random Qwen2.5-VL checkpoint directory (weights from `seed`) and return its path."""
    require("transformers")
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    text = _text_config(spec, tokenizer) | {"rope_parameters": {
        "rope_type": "default", "rope_theta": 1e6, "mrope_section": list(spec.mrope_section)}}
    vision = dict(depth=spec.vision_depth, hidden_size=spec.vision_hidden,
                  intermediate_size=2 * spec.vision_hidden, num_heads=spec.vision_heads,
                  out_hidden_size=spec.hidden,  # must equal the text hidden size
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                  fullatt_block_indexes=[spec.vision_depth - 1], initializer_range=spec.init_std)
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32)
    return _save(path, model, tokenizer, spec, seed, "vlm", image_processor=_image_processor(spec))


def save_tiny_llm(path: str | Path, spec: TinySpec = TinySpec(), seed: int = 0,
                  backbone_of: str | Path | None = None) -> Path:
    """Write a random Qwen2.5 text checkpoint. With `backbone_of` (a tiny VLM directory) its
    weights are that VLM's language model, so it plays the VLM's text backbone."""
    require("transformers")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen2Config(**_text_config(spec, tokenizer), tie_word_embeddings=False,
                         rope_parameters={"rope_type": "default", "rope_theta": 1e6})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM._from_config(config, dtype=torch.float32)
    if backbone_of is not None:
        from mmicl.vlm.adapter import load_model

        vlm = load_model(backbone_of, device="cpu", dtype="float32")
        model.model.load_state_dict(vlm.model.language_model.state_dict())
        model.lm_head.load_state_dict(vlm.lm_head.state_dict())
    return _save(path, model, tokenizer, spec, seed, "llm", backbone_of=backbone_of)


def save_tiny_pair(root: str | Path, spec: TinySpec = TinySpec(), seed: int = 0
                   ) -> tuple[Path, Path]:
    """root/mllm (a tiny Qwen2.5-VL) and root/llm (its text backbone)."""
    root = Path(root)
    mllm = save_tiny_vlm(root / "mllm", spec, seed)
    return mllm, save_tiny_llm(root / "llm", spec, seed, backbone_of=mllm)


def is_tiny(model_path: str | Path) -> bool:
    """Whether a checkpoint directory was written by this module (random weights)."""
    return (Path(model_path) / TINY_MARKER).is_file()


def _image_processor(spec: TinySpec):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)

    return Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=spec.max_pixels)


def _save(path, model, tokenizer, spec: TinySpec, seed: int, kind: str, image_processor=None,
          backbone_of=None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if image_processor is not None:
        image_processor.save_pretrained(path)
    marker = {"kind": kind, "seed": seed, "spec": asdict(spec), "random_weights": True,
              "backbone_of": None if backbone_of is None else str(backbone_of),
              "n_params": sum(p.numel() for p in model.parameters())}
    (path / TINY_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
    return path


def timed_smoke(root: str | Path, spec: TinySpec = TinySpec(), seed: int = 0) -> dict:
    """Seconds to write, load and run the tiny pair once (for the report and the README)."""
    from mmicl.vlm.adapter import load_model

    t0 = time.perf_counter()
    mllm, llm = save_tiny_pair(root, spec, seed)
    t1 = time.perf_counter()
    model = load_model(mllm, device="cpu")
    t2 = time.perf_counter()
    tokenizer = build_tokenizer()
    ids = torch.tensor([tokenizer.encode("This is a picture of a dog. This is a " * 10)])
    with torch.no_grad():
        model(input_ids=ids, output_attentions=True)
    t3 = time.perf_counter()
    return {"save_pair_s": t1 - t0, "load_vlm_s": t2 - t1, "forward_s": t3 - t2,
            "tokens": ids.shape[1]}
