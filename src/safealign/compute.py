"""Compute accounting: what a stage ran, measured and estimated.

FLOPs follow Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", sec. 2.1) as nanoGPT's
`estimate_mfu` does. Per token, with N the parameters of the model that ran, L layers, d the width and T the
attention span of that token (the tokens it attends to, cache included):
  forward                    2N + 4·L·d·T
  backward                   2N (activation gradients) + 2·N_trained (weight gradients) + 8·L·d·T
so a full fine-tune costs 6N + 12·L·d·T per trained token, and LoRA, whose frozen weights get no weight gradient,
about 4N + 12·L·d·T (N_trained is the adapter: well under 1% of N). Tokens are counted by hooks on each model's
forward, so every forward a trainer makes (generation steps, reference, value and reward passes, PPO epochs) is
counted where it happens. Only real tokens count: padding positions (from the attention mask) are reported apart,
as `padding_tokens`, and add no FLOPs. Work that measures a model rather than trains it (held-out evaluation,
safety-curve scoring) runs under `ComputeMeter.excluded()` and is not the stage's compute.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class ModelShape:
    params: int
    layers: int
    width: int
    trainable: int | None = None  # parameters that get a weight gradient; None = all of them

    @classmethod
    def of(cls, model: torch.nn.Module) -> ModelShape:
        cfg = getattr(model, "config", None)
        layers = getattr(cfg, "num_hidden_layers", 0) or 0
        width = getattr(cfg, "hidden_size", 0) or 0
        # Count each tensor once (tied embeddings) and every parameter, frozen or not.
        seen, n, trainable = set(), 0, 0
        for p in model.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                n += p.numel()
                trainable += p.numel() if p.requires_grad else 0
        return cls(n, layers, width, trainable)

    def flops_per_token(self, span: int, backward: bool) -> float:
        attention = 4 * self.layers * self.width * span
        forward = 2 * self.params + attention
        if not backward:
            return forward
        trained = self.params if self.trainable is None else self.trainable
        return forward + 2 * self.params + 2 * trained + 2 * attention


@dataclass
class ComputeRecord:
    stage: str
    device: str
    wall_s: float = 0.0
    cpu_s: float = 0.0  # user+system CPU time of this process and its children
    gpu_s: float = 0.0  # wall time with a GPU held, times the GPUs held
    trained_tokens: int = 0  # tokens through forward+backward
    forward_tokens: int = 0  # tokens through forward only (generation, scoring, reference/value passes)
    padding_tokens: int = 0  # padded positions the models also ran (not in the token counts or FLOPs)
    generated_tokens: int = 0  # new tokens sampled (a subset of forward_tokens)
    flops: float = 0.0
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cpu_hours(self) -> float:
        return self.cpu_s / 3600

    @property
    def gpu_hours(self) -> float:
        return self.gpu_s / 3600

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"cpu_hours": self.cpu_hours, "gpu_hours": self.gpu_hours}

    def sum_across_processes(self) -> None:
        """Under a distributed launch each process meters its own share: add the token counts, FLOPs and CPU time
        of every process (wall time and peaks stay the main process's). A no-op without torch.distributed."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        keys = ("trained_tokens", "forward_tokens", "generated_tokens", "padding_tokens", "flops", "cpu_s", "gpu_s")
        t = torch.tensor([float(getattr(self, k)) for k in keys], dtype=torch.float64)
        dist.all_reduce(t)
        for k, v in zip(keys, t.tolist()):
            setattr(self, k, int(v) if k.endswith("tokens") else v)
        self.extra["processes"] = dist.get_world_size()

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")


def load_record(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class ComputeMeter:
    """Context manager that measures a stage and counts the tokens its models process.

    >>> with ComputeMeter("sft") as meter:
    ...     meter.watch(model)        # count this model's forwards
    ...     trainer.train()
    >>> meter.record.flops
    """

    def __init__(self, stage: str):
        self.record = ComputeRecord(stage=stage, device="cuda" if torch.cuda.is_available() else "cpu")
        self._handles: list[Any] = []
        self._watched: set[int] = set()
        self._prior: dict[str, float] = {}
        self._paused = False
        self._excluded = {"wall_s": 0.0, "cpu_s": 0.0}

    def watch(self, model: torch.nn.Module, generating: bool = False) -> None:
        """Count tokens through `model` (its transformer backbone, so wrappers that call the backbone directly,
        like TRL's PolicyAndValueWrapper, are counted too)."""
        backbone = getattr(model, "base_model", model)
        backbone = getattr(backbone, "model", backbone)  # PeftModel -> LoraModel -> CausalLM
        backbone = getattr(backbone, getattr(backbone, "base_model_prefix", ""), backbone)
        if id(backbone) in self._watched:
            return
        self._watched.add(id(backbone))
        shape = ModelShape.of(model)

        def hook(module, args, kwargs):
            if self._paused:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                ids = kwargs.get("inputs_embeds")
            if ids is None:
                return
            batch, new = ids.shape[0], ids.shape[1]
            past = kwargs.get("cache", kwargs.get("past_key_values"))  # transformers 5 renamed it `cache`
            span = new + (past.get_seq_length() if past is not None and hasattr(past, "get_seq_length") else 0)
            backward = torch.is_grad_enabled() and module.training
            mask = kwargs.get("attention_mask")
            real = int(mask[:, -new:].sum()) if isinstance(mask, torch.Tensor) and mask.dim() == 2 else batch * new
            self.record.padding_tokens += batch * new - real
            if backward:
                self.record.trained_tokens += real
            else:
                self.record.forward_tokens += real
                if past is not None:  # a generate() step (prefill included) samples one token per sequence
                    self.record.generated_tokens += batch
            self.record.flops += real * shape.flops_per_token(span, backward)

        self._handles.append(backbone.register_forward_pre_hook(hook, with_kwargs=True))

    @contextlib.contextmanager
    def excluded(self) -> Iterator[None]:
        """Work in this block is not the stage's compute (e.g. scoring PPO checkpoints for the safety curve): its
        forwards are not counted and its wall and CPU time are taken out of the totals (kept in `extra`)."""
        self._paused, t0, c0 = True, time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            self._paused = False
            self._excluded["wall_s"] += time.perf_counter() - t0
            self._excluded["cpu_s"] += _cpu_seconds() - c0

    def snapshot(self) -> dict[str, float]:
        """Counts so far, including time up to now (for a checkpoint)."""
        r = self.record
        return {
            "wall_s": time.perf_counter() - self._t0 - self._excluded["wall_s"] + self._prior.get("wall_s", 0.0),
            "cpu_s": _cpu_seconds() - self._c0 - self._excluded["cpu_s"] + self._prior.get("cpu_s", 0.0),
            "gpu_s": self._prior.get("gpu_s", 0.0)
            + (time.perf_counter() - self._t0 if torch.cuda.is_available() else 0.0),
            "trained_tokens": r.trained_tokens,
            "forward_tokens": r.forward_tokens,
            "generated_tokens": r.generated_tokens,
            "padding_tokens": r.padding_tokens,
            "flops": r.flops,
        }

    def add(self, prior: dict[str, float]) -> None:
        """Fold in what an interrupted earlier attempt spent (from its checkpoint's snapshot)."""
        self._prior = {k: float(v) for k, v in prior.items()}
        r = self.record
        r.trained_tokens += int(prior.get("trained_tokens", 0))
        r.forward_tokens += int(prior.get("forward_tokens", 0))
        r.generated_tokens += int(prior.get("generated_tokens", 0))
        r.padding_tokens += int(prior.get("padding_tokens", 0))
        r.flops += float(prior.get("flops", 0.0))
        r.extra["resumed_with_prior_compute"] = True

    def __enter__(self) -> ComputeMeter:
        self._t0, self._c0 = time.perf_counter(), _cpu_seconds()
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        r = self.record
        r.wall_s = time.perf_counter() - self._t0 - self._excluded["wall_s"] + self._prior.get("wall_s", 0.0)
        r.cpu_s = _cpu_seconds() - self._c0 - self._excluded["cpu_s"] + self._prior.get("cpu_s", 0.0)
        if self._excluded["wall_s"]:
            r.extra["excluded_measurement"] = dict(self._excluded)
        r.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
        if torch.cuda.is_available():
            r.gpu_s = (time.perf_counter() - self._t0) * max(
                1, int(os.environ.get("WORLD_SIZE", "1"))
            ) + self._prior.get("gpu_s", 0.0)
            r.peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20
            r.extra["gpu_name"] = torch.cuda.get_device_name(0)


def money(record: dict[str, Any], usd_per_cpu_hour: float, usd_per_gpu_hour: dict[str, float]) -> float:
    """Dollars at the prices in params: CPU-hours on a CPU machine, GPU-hours (by GPU type) on a GPU machine."""
    if record.get("gpu_s", 0) > 0:
        name = record.get("extra", {}).get("gpu_name", "")
        price = next(
            (p for k, p in usd_per_gpu_hour.items() if k != "default" and k.lower() in name.lower()),
            usd_per_gpu_hour.get("default", 0.0),
        )
        return record["gpu_s"] / 3600 * price
    return record["cpu_s"] / 3600 * usd_per_cpu_hour


# Dense bf16 tensor-core peaks (no sparsity) from NVIDIA's datasheets: H100 SXM and H200 989.4 TFLOP/s, H100 PCIe
# 756, A100 312, L4 121, A10G 125 (A10: 125), T4 65 (fp16). Achieved FLOP/s of a GPU stage is divided by these.
GPU_PEAK_BF16_FLOPS = {
    "H200": 989.4e12,
    "H100 PCIe": 756e12,
    "H100": 989.4e12,
    "A100": 312e12,
    "L4": 121e12,
    "A10": 125e12,
    "T4": 65e12,
}


def gpu_peak_flops(name: str) -> float | None:
    """The datasheet bf16 peak of a GPU by its device name (first table key contained in it), or None."""
    return next((v for k, v in GPU_PEAK_BF16_FLOPS.items() if k.lower() in name.lower()), None)
