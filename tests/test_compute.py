import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from safealign.compute import ComputeMeter, ModelShape, gpu_peak_flops, money


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)  # fmt: skip
    return LlamaForCausalLM(cfg)


def test_flops_per_token_follows_kaplan():
    s = ModelShape(params=1000, layers=2, width=8)
    assert s.flops_per_token(span=10, backward=False) == 2 * 1000 + 4 * 2 * 8 * 10
    assert s.flops_per_token(span=10, backward=True) == 3 * (2 * 1000 + 4 * 2 * 8 * 10)


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
