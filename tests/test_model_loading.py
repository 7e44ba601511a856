"""Models load from safetensors only, and a model's own Python code never runs unless the user opts in."""

import json
import shutil

import pytest

from safealign.models import BASE_CHAT_TEMPLATE, build_base, load_policy, load_smollm2_tokenizer


def test_pickle_weights_are_refused(tiny_model_dir, tmp_path):
    import torch
    from safetensors.torch import load_file

    d = tmp_path / "pickled"
    shutil.copytree(tiny_model_dir, d)
    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")  # a pickle that could run code
    (d / "model.safetensors").unlink()
    assert (d / "pytorch_model.bin").exists() and not (d / "model.safetensors").exists()
    with pytest.raises(OSError, match="safetensors|model.safetensors"):
        load_policy(d)
    with pytest.raises(OSError, match="safetensors|model.safetensors"):
        build_base(str(d))


def test_remote_code_needs_opt_in(tiny_model_dir, tmp_path):
    d = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, d)
    marker = tmp_path / "code-ran"
    (d / "custom_config.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from transformers import LlamaConfig\nclass CustomConfig(LlamaConfig):\n    model_type = 'custom-llama'\n"
    )
    cfg = json.loads((d / "config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "custom_config.CustomConfig"}
    cfg["model_type"] = "custom-llama"
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="trust_remote_code"):
        build_base(str(d))  # model.trust_remote_code defaults to false
    assert not marker.exists(), "the model's own code ran without opt-in"


def test_base_model_template_starts_with_bos_and_prompt_is_a_prefix_of_the_training_text():
    tok = load_smollm2_tokenizer()
    tok.chat_template = BASE_CHAT_TEMPLATE
    user = [{"role": "user", "content": "How do I boil an egg?"}]
    prompt = tok.apply_chat_template(user, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(user + [{"role": "assistant", "content": "Simmer it."}], tokenize=False)
    assert prompt == tok.bos_token + "Question: How do I boil an egg?\nAnswer:"  # no <bos>: Gemma-3 writes loops
    assert full.startswith(prompt) and full.endswith("Simmer it." + tok.eos_token + "\n")


def test_cached_smollm2_tokenizer_is_the_converted_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFEALIGN_CACHE", str(tmp_path))
    converted = load_smollm2_tokenizer()  # from the GGUF, then written to the cache
    assert len(list(tmp_path.iterdir())) == 1
    cached = load_smollm2_tokenizer()  # from the cache
    assert type(cached) is type(converted)
    texts = ["How do I boil an egg?", "如何制作炸弹？", "Как дела?", "<|im_start|>user\nhi<|im_end|>", "  x\n\ty "]
    for t in texts:
        assert cached(t)["input_ids"] == converted(t)["input_ids"]
    chat = [{"role": "user", "content": "Hola"}]
    assert cached.apply_chat_template(chat, add_generation_prompt=True) == converted.apply_chat_template(
        chat, add_generation_prompt=True
    )
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token", "model_max_length", "padding_side"):
        assert getattr(cached, attr) == getattr(converted, attr), attr
    assert cached.get_vocab() == converted.get_vocab()


def test_reward_scores_batched_by_token_length_match_one_at_a_time(tiny_model_dir):
    """Batches of mixed scripts and lengths, padded per batch, give each text the score it gets alone, in input
    order, and a text over max_length keeps its end (the response)."""
    from safealign.models import load_reward_model, score

    model, tok = load_reward_model(str(tiny_model_dir))
    prompts = ["How do I bake bread?", "কীভাবে একটি তালা খুলতে হয়? " * 6, "如何制作炸弹？", "Hi"]
    responses = ["Mix flour and water.", "আমি সাহায্য করতে পারি না।", "我不能帮助你。" * 30, "Hello!"]
    chats = [[{"role": "user", "content": p}] for p in prompts]
    batched = score(model, tok, chats, responses, batch_size=3, max_length=96)
    alone = [score(model, tok, [c], [r], max_length=96)[0] for c, r in zip(chats, responses)]
    assert batched == pytest.approx(alone, abs=1e-4)
    assert len(set(batched)) == len(batched)  # a random head still tells the texts apart: order is checked
    assert score(model, tok, [], []) == []
