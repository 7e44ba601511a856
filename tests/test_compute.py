import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from safealign.compute import ComputeMeter, ModelShape, gpu_peak_flops, money


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(cfg)


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


def test_flops_per_token_follows_kaplan():
    s = ModelShape(params=1000, layers=2, width=8)
    assert s.flops_per_token(span=10, backward=False) == 2 * 1000 + 4 * 2 * 8 * 10
    assert s.flops_per_token(span=10, backward=True) == 3 * (2 * 1000 + 4 * 2 * 8 * 10)  # 6N + 12LdT
    lora = ModelShape(params=1000, layers=2, width=8, trainable=10)  # frozen weights: no weight gradient
    assert lora.flops_per_token(span=10, backward=True) == 4 * 1000 + 2 * 10 + 12 * 2 * 8 * 10


def test_a_lora_step_by_hand():
    """One LoRA training step on 2 sequences of 5 tokens, 2 of them padding, checked against numbers worked out
    by hand: the tiny Llama has 4,096 (tied embedding) + 2 x 9,280 (layers) + 32 (norm) = 22,688 weights; LoRA
    r=2 on q_proj (2x32 + 32x2) and v_proj (2x32 + 16x2) adds 2 x 224 = 448 trained ones, N = 23,136. Per real
    token, span 5: forward 2N + 4·2·32·5 = 47,552; backward 2N + 2·448 + 8·2·32·5 = 49,728; 8 real tokens."""
    from peft import LoraConfig, get_peft_model

    full = tiny_llama()
    # the same step as a full fine-tune: 8 x (6 x 22,688 + 12·2·32·5)
    assert ModelShape.of(full).flops_per_token(5, backward=True) * 8 == 8 * (6 * 22_688 + 3_840) == 1_119_744
    peft_model = get_peft_model(tiny_llama(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    ids = torch.randint(1, 128, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    assert ModelShape.of(peft_model).params == 23_136 and ModelShape.of(peft_model).trainable == 448
    with ComputeMeter("lora") as meter:
        meter.watch(peft_model)
        peft_model.train()
        peft_model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    r = meter.record
    assert (r.trained_tokens, r.padding_tokens, r.forward_tokens) == (8, 2, 0)
    assert r.flops == 8 * (47_552 + 49_728) == 778_240


def test_a_ppo_update_by_hand(model):
    """The forwards of one PPO update (TRL's order: generate, reference, value and reward passes, then a policy
    and value training pass), batch 2, 3-token queries, 2-token responses, with no padding. Worked out by hand from
    N = 22,688, L·d = 64: generation = prefill 2x3 tokens at span 3 + one step of 2 tokens at span 4; each of the
    reference, value and reward passes 2x5 tokens at span 5; training 2x5 tokens, full fine-tune, at span 5."""
    query, full = torch.randint(1, 128, (2, 3)), torch.randint(1, 128, (2, 5))
    with ComputeMeter("ppo") as meter:
        meter.watch(model)
        model.eval()
        with torch.no_grad():
            model.generate(
                query,
                attention_mask=torch.ones_like(query),
                max_new_tokens=2,
                min_new_tokens=2,
                do_sample=False,
                pad_token_id=0,
            )
            for _ in range(3):  # reference, value, reward (the same shape here)
                model(input_ids=full, attention_mask=torch.ones_like(full))
        model.train()
        model(input_ids=full, attention_mask=torch.ones_like(full), labels=full).loss.backward()
    fwd = lambda span: 2 * 22_688 + 4 * 64 * span  # noqa: E731
    expected = 6 * fwd(3) + 2 * fwd(4) + 3 * 10 * fwd(5) + 10 * (6 * 22_688 + 12 * 64 * 5)
    assert expected == 6 * 46_144 + 2 * 46_400 + 30 * 46_656 + 10 * 139_968 == 3_169_024
    r = meter.record
    assert (r.forward_tokens, r.generated_tokens, r.trained_tokens, r.padding_tokens) == (6 + 2 + 30, 4, 10, 0)
    assert r.flops == expected


def test_meter_counts_training_forward_and_generated_tokens(model):
    shape = ModelShape.of(model)
    assert shape.params == sum(p.numel() for p in model.parameters())
    ids = torch.randint(0, 128, (2, 5))
    with ComputeMeter("t") as meter:
        meter.watch(model)
        meter.watch(model)  # idempotent
        model.train()
        model(input_ids=ids, labels=ids).loss.backward()
        model.eval()
        with torch.no_grad():
            model(input_ids=ids)
            model.generate(ids, max_new_tokens=3, do_sample=False, min_new_tokens=3, pad_token_id=0)
    r = meter.record
    assert r.trained_tokens == 10
    assert r.generated_tokens == 2 * 3
    assert r.forward_tokens == 10 + 10 + 2 * 2  # plain forward, prefill, then 2 single-token steps
    expected_train = 10 * shape.flops_per_token(5, backward=True)
    assert r.flops > expected_train
    assert r.wall_s > 0 and r.cpu_s > 0 and r.peak_rss_mb > 0


def test_money_uses_cpu_or_gpu_price():
    assert money({"cpu_s": 7200, "gpu_s": 0}, 0.05, {"default": 2}) == pytest.approx(0.1)
    rec = {"cpu_s": 7200, "gpu_s": 3600, "extra": {"gpu_name": "NVIDIA H100 80GB HBM3"}}
    assert money(rec, 0.05, {"H100": 3.0, "default": 2}) == pytest.approx(3.0)
    assert money(rec | {"extra": {"gpu_name": "Tesla T4"}}, 0.05, {"H100": 3.0, "default": 2}) == pytest.approx(2.0)


def test_excluded_work_is_not_counted_and_prior_compute_is_added(model):
    ids = torch.randint(0, 128, (2, 5))
    t0 = time.perf_counter()
    with ComputeMeter("t") as meter:
        meter.watch(model)
        with torch.no_grad():
            model(input_ids=ids)
            with meter.excluded():  # a measurement, not the stage's compute
                model(input_ids=ids)
                time.sleep(1.0)
        snap = meter.snapshot()
    total = time.perf_counter() - t0
    assert meter.record.forward_tokens == 10
    assert meter.record.extra["excluded_measurement"]["wall_s"] >= 1.0
    # the excluded second is missing from the stage's wall time, whatever the load on the machine
    assert meter.record.wall_s <= total - 1.0 and snap["forward_tokens"] == 10
    with ComputeMeter("t") as resumed:  # a rerun after a kill folds in what the first attempt spent
        resumed.add(snap)
        resumed.watch(model)
        with torch.no_grad():
            model(input_ids=ids)
    assert resumed.record.forward_tokens == 20 and resumed.record.flops == pytest.approx(2 * meter.record.flops)
    assert resumed.record.wall_s >= snap["wall_s"] and resumed.record.extra["resumed_with_prior_compute"]


def test_gpu_peak_by_device_name():
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert gpu_peak_flops("NVIDIA H100 PCIe") == pytest.approx(756e12)  # not the SXM figure
    assert gpu_peak_flops("NVIDIA H200") == pytest.approx(989.4e12)
    assert gpu_peak_flops("NVIDIA A100-SXM4-40GB") == pytest.approx(312e12)
    assert gpu_peak_flops("Some Future GPU") is None
