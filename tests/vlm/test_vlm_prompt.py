"""Hand-built prompts: image-pad expansion, the answer-span finder, the demo question string."""

from dataclasses import replace

import pytest
import torch

pytest.importorskip("transformers")

from mmicl.vlm.openmi import Shot  # noqa: E402
from mmicl.vlm.prompt import (answer_mask, answer_variants, build_prompt,  # noqa: E402
                              expand_image_pads, find_spans, first_tokens)


def tokens(tok, prompt, mask):
    return [tok.convert_ids_to_tokens(int(i)) for i in prompt.input_ids[0][mask]]


def test_image_pads_match_the_image_grid(vlm, examples):
    adapter, proc = vlm
    prompt = build_prompt(proc, examples[0])
    pads = int((prompt.input_ids[0] == proc.image_token_id).sum())
    # 5 images of 56x56 -> a 4x4 patch grid each -> 16 patches, 4 LLM tokens after the 2x2 merge
    assert prompt.image_grid_thw.tolist() == [[1, 4, 4]] * 5
    assert prompt.pixel_values.shape == (80, 3 * 2 * 14 * 14)
    assert pads == 20 == int(prompt.image_grid_thw.prod(-1).sum()) // 4
    assert (~prompt.text_mask()).sum() == 20
    out = adapter.run(prompt.inputs())  # the model accepts the hand-built inputs
    assert out.logits.shape == (1, len(proc.tokenizer))


def test_expand_image_pads_counts():
    assert expand_image_pads("a<|image_pad|>b<|image_pad|>", [2, 1]) == \
        "a<|image_pad|><|image_pad|>b<|image_pad|>"
    with pytest.raises(ValueError, match="1 <\\|image_pad\\|> but there are 2 images"):
        expand_image_pads("a<|image_pad|>b", [2, 1])


def test_single_token_answer_positions_are_the_query_class_demos(vlm, examples):
    _, proc = vlm
    tok = proc.tokenizer
    ex = examples[0]
    prompt = build_prompt(proc, ex)
    mask = answer_mask(prompt, tok)
    assert tokens(tok, prompt, mask) == [ex.answer] * 2  # n_shot rounds, one label token each
    ids = prompt.input_ids[0].tolist()
    header = tok.encode("<|im_start|>assistant\n", add_special_tokens=False)
    for pos in mask.nonzero().flatten().tolist():
        assert ids[pos - len(header):pos] == header  # each is an assistant turn's answer
    # demos of the other class are not marked
    other = next(s.answer for s in ex.shots if s.answer != ex.answer)
    assert tok.encode(other, add_special_tokens=False)[0] not in prompt.input_ids[0][mask]


def test_multi_token_answer_spans(vlm, examples):
    _, proc = vlm
    tok = proc.tokenizer
    ex = examples[0]
    word = "wuggleplex"  # not in the tiny vocabulary: byte pieces
    bare, spaced = answer_variants(tok, word)
    assert len(bare) > 1 and bare != spaced
    shots = tuple(Shot(s.image, word if s.answer == ex.answer else s.answer, s.real_name)
                  for s in ex.shots)
    prompt = build_prompt(proc, replace(ex, answer=word, shots=shots))
    mask = answer_mask(prompt, tok)
    assert int(mask.sum()) == 2 * len(bare)
    assert tok.decode(prompt.input_ids[0][mask]) == word * 2
    starts = [s for s, n in find_spans(prompt.input_ids[0].tolist(), [bare, spaced])]
    assert len(starts) == 2 and all(n == len(bare) for _, n in
                                    find_spans(prompt.input_ids[0].tolist(), [bare, spaced]))


def test_find_spans_bare_and_space_prefixed(vlm):
    tok = vlm[1].tokenizer
    ids = tok.encode("dax is a dax\ndax", add_special_tokens=False)
    bare, spaced = answer_variants(tok, "dax")
    assert len(bare) == len(spaced) == 1 and bare != spaced
    assert find_spans(ids, [bare, spaced]) == [(0, 1), (3, 1), (5, 1)]
    assert find_spans(ids, [bare]) == [(0, 1), (5, 1)]
    assert find_spans([1, 2, 1, 2, 3], [[1, 2], [2, 3]]) == [(0, 2), (2, 2), (3, 2)]
    assert find_spans([1, 2], [[]]) == []
    assert first_tokens(tok, ["dax"]) == {bare[0], spaced[0]}


def test_demo_question_string_moves_no_answer_token(vlm, examples):
    _, proc = vlm
    tok = proc.tokenizer
    ex = examples[1]
    spaced = build_prompt(proc, ex, question="This is a ")
    plain = build_prompt(proc, ex, question="This is a")
    # one lone "Ġ" per demo user turn; the query keeps query.json's "This is a"
    assert spaced.length - plain.length == len(ex.shots)
    assert "<|im_end|>" in spaced.text and "a <|im_end|>\n<|im_start|>assistant" in spaced.text
    assert tokens(tok, spaced, answer_mask(spaced, tok)) == \
        tokens(tok, plain, answer_mask(plain, tok)) == [ex.answer] * 2
    forced = build_prompt(proc, ex, query_question="This is a ")
    assert forced.length == spaced.length + 1


def test_text_only_prompt_and_training_completion(tiny_pair, examples):
    from mmicl.vlm.prompt import load_processor

    proc = load_processor(tiny_pair[1])
    assert proc.image_processor is None
    ex = examples[2]
    prompt = build_prompt(proc, ex, text_only=True)
    assert prompt.pixel_values is None and prompt.text_mask().all()
    for shot in ex.shots:
        assert f"This is a picture of a {shot.real_name}. This is a <|im_end|>" in prompt.text
    assert prompt.text.endswith(f"This is a picture of a {ex.real_name}. This is a <|im_end|>\n"
                                "<|im_start|>assistant\n")
    train = build_prompt(proc, ex, text_only=True, with_answer=True)
    assert train.completion_tokens == 2  # the nonce word + <|im_end|>
    assert torch.equal(train.input_ids[0, :prompt.length], prompt.input_ids[0])
    assert proc.tokenizer.decode(train.input_ids[0, -2:]) == ex.answer + "<|im_end|>"
    with pytest.raises(ValueError, match="image processor"):
        build_prompt(proc, ex)
    with pytest.raises(ValueError, match="real_name"):
        build_prompt(proc, replace(ex, real_name=None), text_only=True)
