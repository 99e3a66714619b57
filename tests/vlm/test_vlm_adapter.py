"""HFAdapter: the o_proj knockout hook is exact, hooks leave nothing behind, the grid comes from
the config; checkpoint loading and the optional-extra guard fail with useful messages."""

import json
import sys

import pytest
import torch

from mmicl.vlm import INSTALL_HINT, require

RELEASED_TOP5 = [(19, 11), (19, 1), (31, 9), (1, 1), (2, 13),  # MLLM PH (PAPER_PROTOCOL §5.2)
                 (31, 15), (31, 8), (31, 12), (30, 3), (25, 5)]  # MLLM IH


@pytest.fixture(scope="module")
def prompt(vlm, examples):
    from mmicl.vlm.prompt import build_prompt

    return build_prompt(vlm[1], examples[0])


def test_grid_and_layers_from_config(vlm):
    adapter, _ = vlm
    assert (adapter.n_layers, adapter.n_heads, adapter.head_dim) == (36, 16, 16)
    assert adapter.layers is adapter.model.model.language_model.layers


def test_hook_equals_zeroed_o_proj_columns_and_removal_restores(vlm, prompt):
    adapter, _ = vlm
    heads = [(1, 3), (1, 7), (20, 0), (35, 15)]
    base = adapter.run(prompt.inputs(), attention=True)
    with adapter.ablate_heads(heads):
        hooked = adapter.run(prompt.inputs(), attention=True)
    after = adapter.run(prompt.inputs(), attention=True)
    assert torch.equal(after.logits, base.logits) and torch.equal(after.attention, base.attention)
    assert not torch.equal(hooked.logits, base.logits)
    assert all(not layer.self_attn.o_proj._forward_pre_hooks for layer in adapter.layers)

    saved = {i: adapter.layers[i].self_attn.o_proj.weight.detach().clone() for i, _ in heads}
    try:
        with torch.no_grad():
            for i, h in heads:
                adapter.layers[i].self_attn.o_proj.weight[:, h * 16:(h + 1) * 16] = 0
        zeroed = adapter.run(prompt.inputs())
    finally:
        with torch.no_grad():
            for i, w in saved.items():
                adapter.layers[i].self_attn.o_proj.weight.copy_(w)
    assert torch.equal(hooked.logits, zeroed.logits)
    assert torch.equal(adapter.run(prompt.inputs()).logits, base.logits)


def test_knockout_leaves_earlier_attention_untouched(vlm, prompt):
    adapter, _ = vlm
    base = adapter.run(prompt.inputs(), attention=True).attention
    with adapter.ablate_heads([(5, 2)]):
        ko = adapter.run(prompt.inputs(), attention=True).attention
    assert torch.equal(ko[:6], base[:6])  # the head's own attention and everything before
    assert not torch.equal(ko[6], base[6])


def test_released_head_indices_fit_the_tiny_grid(vlm, prompt):
    adapter, _ = vlm
    base = adapter.run(prompt.inputs()).logits
    with adapter.ablate_heads(RELEASED_TOP5):
        ko = adapter.run(prompt.inputs()).logits
    assert (ko - base).abs().max() > 1e-4


def test_head_outside_grid_and_unknown_mode(vlm):
    adapter, _ = vlm
    with pytest.raises(ValueError, match=r"\(layer=36, head=0\).*36 layers x 16 heads"):
        adapter.ablate_heads([(36, 0)])
    with pytest.raises(ValueError, match=r"\(layer=3, head=16\)"):
        adapter.ablate_heads([(3, 16)])
    with pytest.raises(ValueError, match="mode 'mean' is not supported"):
        adapter.ablate_heads([(0, 0)], mode="mean")
    assert all(not layer.self_attn.o_proj._forward_pre_hooks for layer in adapter.layers)


def test_peft_wrapped_model_finds_layers_and_knocks_out(tiny_pair, examples):
    from mmicl.vlm.adapter import HFAdapter, decoder_layers, load_model
    from mmicl.vlm.finetune import LoraSettings, add_lora
    from mmicl.vlm.prompt import build_prompt, load_processor

    model = load_model(tiny_pair[0], device="cpu")
    layers = decoder_layers(model)
    wrapped = add_lora(model, LoraSettings(rank=2, gradient_checkpointing=False))
    assert decoder_layers(wrapped) is layers
    adapter = HFAdapter(wrapped)
    assert adapter.head_dim == 16
    prompt = build_prompt(load_processor(tiny_pair[0]), examples[1])
    base = adapter.run(prompt.inputs()).logits
    with adapter.ablate_heads([(0, 1), (30, 3)]):
        assert not torch.equal(adapter.run(prompt.inputs()).logits, base)
    assert torch.equal(adapter.run(prompt.inputs()).logits, base)


def test_text_backbone_matches_the_vlm_on_text(tiny_pair, vlm, examples):
    from mmicl.vlm.adapter import HFAdapter, load_model
    from mmicl.vlm.prompt import build_prompt

    adapter, proc = vlm
    llm = HFAdapter(load_model(tiny_pair[1], device="cpu"))
    prompt = build_prompt(proc, examples[0], text_only=True)
    a, b = adapter.run(prompt.inputs(), True), llm.run(prompt.inputs(), True)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.attention, b.attention)


def test_tiny_checkpoints_are_deterministic_per_seed(tmp_path):
    pytest.importorskip("transformers")
    from safetensors.torch import load_file

    from mmicl.vlm.tiny import TinySpec, is_tiny, save_tiny_vlm

    spec = TinySpec(n_layers=2, n_heads=4, hidden=64, intermediate=64, mrope_section=(2, 3, 3))
    a, b, c = (save_tiny_vlm(tmp_path / name, spec, seed) for name, seed in
               (("a", 3), ("b", 3), ("c", 4)))
    wa, wb, wc = (load_file(p / "model.safetensors") for p in (a, b, c))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()
    assert is_tiny(a) and json.loads((a / "mmicl_tiny.json").read_text())["random_weights"]
    with pytest.raises(ValueError, match="head_dim"):
        TinySpec(hidden=250)


def test_checkpoint_without_config_or_weights(tiny_pair, tmp_path):
    from mmicl.vlm.adapter import load_model

    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*config\.json and weights"):
        load_model(tmp_path, device="cpu")
    (tmp_path / "config.json").write_text((tiny_pair[0] / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}: model directory lacks weights"):
        load_model(tmp_path, device="cpu")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_model(tmp_path / "nope", device="cpu")


def test_dtype_and_device_resolution(monkeypatch):
    from mmicl.vlm.adapter import resolve_device, resolve_dtype

    assert resolve_dtype("auto", "cpu") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype("auto", "cuda") is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_dtype("auto", "cuda") is torch.float16
    assert resolve_dtype("bf16") is torch.bfloat16
    with pytest.raises(ValueError, match="dtype='int8'"):
        resolve_dtype("int8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"


@pytest.mark.parametrize("missing", ["transformers", "peft"])
def test_missing_extra_gives_the_pip_command(monkeypatch, missing, tmp_path):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import missing` raise ImportError
    with pytest.raises(ImportError) as err:
        require(missing)
    assert INSTALL_HINT in str(err.value) and repr(missing) in str(err.value)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vlm\]"'):
        require()  # the whole extra
    assert INSTALL_HINT == 'pip install -e ".[vlm]"'
    if missing == "transformers":  # through a real entry point too
        from mmicl.vlm.adapter import load_model

        with pytest.raises(ImportError, match=r'pip install -e "\.\[vlm\]"'):
            load_model(tmp_path)
