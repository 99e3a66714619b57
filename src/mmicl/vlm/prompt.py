"""Open-MI chat prompts built by hand, and the token positions of answers inside them.

`Qwen2_5_VLProcessor` / `AutoProcessor` need torchvision (for the video processor), which breaks
beside the CPU torch wheel (MLLM_OFFLINE G1, G2), and `qwen_vl_utils` is another dependency for
a few lines of work. So the prompt is assembled from its parts, as the processor would:
  1. the tokenizer's chat template renders the messages (one `<|image_pad|>` per image);
  2. the Qwen2-VL image processor's PIL path turns the images into pixel_values and image_grid_thw;
  3. the k-th `<|image_pad|>` is expanded to grid_thw[k].prod() / merge_size**2 copies;
  4. the text is tokenized.

Messages follow the authors' scripts (PAPER_PROTOCOL §5.1-5.2): system "Answer the question with
a single word or phase." (sic); per demonstration a user turn [image, question] and an assistant
turn [answer]; the query as a user turn; add_generation_prompt. The text-only (LLM) version
replaces each image by "This is a picture of a {real_name}." before the question.

Demo question (fidelity decision, MLLM_OFFLINE §2.7): DEMO_QUESTION = "This is a " with a trailing
space, as the authors' scripts write it for every demonstration (and for the query on the
prebuilt path and in the LLM prompt); official VL-ICL writes "This is a". The query's own
question comes from query.json ("This is a" there) unless `query_question` is given. In a chat
prompt the answer opens its own assistant turn, so the choice changes the user turn's last
tokens (a lone "Ġ" before <|im_end|>) but not the answer's tokens, which the span finder tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from mmicl.vlm import require
from mmicl.vlm.openmi import Example

DEMO_QUESTION = "This is a "
SYSTEM_PROMPT = "Answer the question with a single word or phase."
DESCRIPTION = "This is a picture of a {real_name}."
IMAGE_PAD = "<|image_pad|>"


@dataclass
class Processor:
    """A tokenizer and, for a VLM, the image processor (the processor's two halves)."""

    tokenizer: object
    image_processor: object | None = None

    @property
    def image_token_id(self) -> int | None:
        return None if self.image_processor is None else \
            self.tokenizer.convert_tokens_to_ids(IMAGE_PAD)


def load_processor(path: str | Path, images: bool | None = None, max_pixels: int | None = None,
                   min_pixels: int | None = None) -> Processor:
    """Tokenizer (+ image processor when the checkpoint has preprocessor_config.json, or
    images=True) from a local checkpoint directory. max/min_pixels override the image size
    budget (the real processor's default allows 12.8 M pixels per image)."""
    require("transformers")
    from transformers import AutoTokenizer

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.chat_template is None:  # some VL checkpoints keep it beside the processor only
        for name in ("chat_template.jinja", "chat_template.json"):
            if (path / name).is_file():
                text = (path / name).read_text()
                tokenizer.chat_template = json.loads(text)["chat_template"] \
                    if name.endswith(".json") else text
                break
        else:
            raise FileNotFoundError(f"{path}: the tokenizer has no chat template and there is no "
                                    f"chat_template.jinja / chat_template.json")
    if images is None:
        images = (path / "preprocessor_config.json").is_file()
    if not images:
        return Processor(tokenizer)
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil)

    if not (path / "preprocessor_config.json").is_file():
        raise FileNotFoundError(f"{path}: no preprocessor_config.json; expected a Qwen2-VL-style "
                                f"image processor config beside the model")
    kwargs = {k: v for k, v in (("max_pixels", max_pixels), ("min_pixels", min_pixels)) if v}
    return Processor(tokenizer, Qwen2VLImageProcessorPil.from_pretrained(path, **kwargs))


@dataclass
class Prompt:
    """One tokenized prompt (batch of 1) and what the scores need to know about it."""

    input_ids: torch.Tensor  # (1, T)
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    text: str
    answer: str
    demo_answers: tuple[str, ...]
    image_token_id: int | None = None
    completion_tokens: int = 0  # answer + EOS tokens at the end (training prompts), else 0

    def inputs(self) -> dict[str, torch.Tensor]:
        out = {"input_ids": self.input_ids,
               "attention_mask": torch.ones_like(self.input_ids)}
        if self.pixel_values is not None:
            out |= {"pixel_values": self.pixel_values, "image_grid_thw": self.image_grid_thw}
        return out

    @property
    def length(self) -> int:
        return self.input_ids.shape[1]

    def text_mask(self) -> torch.Tensor:
        """(T,) bool: tokens that are not image patches (the `text_only` PH rows)."""
        if self.image_token_id is None:
            return torch.ones(self.length, dtype=torch.bool)
        return self.input_ids[0] != self.image_token_id


def messages(example: Example, text_only: bool = False, question: str = DEMO_QUESTION,
             query_question: str | None = None) -> list[dict]:
    """The chat of one example. Images are placeholders ({"type": "image"}): the template only
    needs to know where they go; the pixels travel separately."""
    def user(real_name: str | None, q: str) -> dict:
        if text_only:
            return {"role": "user", "content": f"{DESCRIPTION.format(real_name=real_name)} {q}"}
        return {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}

    chat = [{"role": "system", "content": SYSTEM_PROMPT}]
    for shot in example.shots:
        chat.append(user(shot.real_name, question))
        answer = shot.answer if text_only else [{"type": "text", "text": shot.answer}]
        chat.append({"role": "assistant", "content": answer})
    if query_question is None:  # the reference: JSON question (MLLM), "This is a " (LLM)
        query_question = question if text_only or example.question is None else example.question
    chat.append(user(example.real_name, query_question))
    return chat


def build_prompt(processor: Processor, example: Example, text_only: bool = False,
                 question: str = DEMO_QUESTION, query_question: str | None = None,
                 with_answer: bool = False) -> Prompt:
    """The tokenized prompt of one example (images unless text_only). with_answer appends the
    answer and EOS after the generation prompt (the fine-tuning text, §5.4)."""
    if text_only and any(x is None for x in (example.real_name,
                                             *(s.real_name for s in example.shots))):
        raise ValueError(f"example {example.index}: the text-only prompt needs real_name for the "
                         f"query and every demonstration")
    if not text_only and processor.image_processor is None:
        raise ValueError("an image prompt needs an image processor; load_processor found no "
                         "preprocessor_config.json in the model directory")
    tok = processor.tokenizer
    text = tok.apply_chat_template(messages(example, text_only, question, query_question),
                                   tokenize=False, add_generation_prompt=True)
    pixel_values = grid = None
    if not text_only:
        from PIL import Image

        images = [Image.open(p).convert("RGB") for p in example.images]
        vision = processor.image_processor(images=images, return_tensors="pt")
        pixel_values, grid = vision["pixel_values"], vision["image_grid_thw"]
        merge = processor.image_processor.merge_size
        text = expand_image_pads(text, [int(g.prod()) // merge ** 2 for g in grid])
    completion = 0
    if with_answer:
        text += example.answer + tok.eos_token
        # the reference's rule: prompt length = total - len(tokens(answer + EOS))
        completion = len(tok.encode(example.answer + tok.eos_token, add_special_tokens=False))
    ids = torch.tensor([tok.encode(text, add_special_tokens=False)])
    return Prompt(ids, pixel_values, grid, text, example.answer,
                  tuple(s.answer for s in example.shots),
                  None if text_only else processor.image_token_id, completion)


def expand_image_pads(text: str, counts: Sequence[int]) -> str:
    """Replace the k-th <|image_pad|> by counts[k] copies (what Qwen2VLProcessor does)."""
    parts = text.split(IMAGE_PAD)
    if len(parts) - 1 != len(counts):
        raise ValueError(f"the chat text has {len(parts) - 1} {IMAGE_PAD} but there are "
                         f"{len(counts)} images; the chat template must emit one per image")
    return parts[0] + "".join(IMAGE_PAD * n + rest for n, rest in zip(counts, parts[1:]))


# --- answer positions ----------------------------------------------------------------------------

def answer_variants(tokenizer, answer: str) -> list[list[int]]:
    """Token ids of the answer, bare and space-prefixed (distinct in a byte-level BPE)."""
    out = []
    for text in (answer, " " + answer):
        ids = tokenizer.encode(text, add_special_tokens=False)
        if ids and ids not in out:
            out.append(ids)
    return out


def find_spans(input_ids: Iterable[int], variants: Sequence[Sequence[int]]
               ) -> list[tuple[int, int]]:
    """Every (start, length) where one of the variants occurs, sorted (the reference's
    find_answer_positions)."""
    seq = list(input_ids)
    spans = set()
    for ids in variants:
        n = len(ids)
        if n == 0:  # an empty encoding matches nothing (the reference's _find_subsequence)
            continue
        spans.update((i, n) for i in range(len(seq) - n + 1) if seq[i:i + n] == list(ids))
    return sorted(spans)


def answer_mask(prompt: Prompt, tokenizer) -> torch.Tensor:
    """(T,) bool: the tokens of every occurrence of the query's answer (bare or space-prefixed)
    in the prompt, i.e. the demos that carry the query's label (the IH score's targets)."""
    mask = torch.zeros(prompt.length, dtype=torch.bool)
    for start, n in find_spans(prompt.input_ids[0].tolist(),
                               answer_variants(tokenizer, prompt.answer)):
        mask[start:start + n] = True
    return mask


def first_tokens(tokenizer, answers: Iterable[str]) -> set[int]:
    """First token of each answer, bare and space-prefixed: the CLA target set (§5.3)."""
    return {ids[0] for a in answers for ids in answer_variants(tokenizer, a)}


def answer_first_token(tokenizer, answer: str) -> int:
    """The accuracy target: the first token of the bare answer (§5.3)."""
    ids = tokenizer.encode(answer, add_special_tokens=False)
    if not ids:
        raise ValueError(f"answer {answer!r} tokenizes to nothing")
    return ids[0]
