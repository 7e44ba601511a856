"""Training cores, one module per trainer: SFT, the reward model, PPO and GRPO (TRL). The stage entry points
(safealign.stages) are thin mains over these; benches and tests call them directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def hf_args(cls: type, params_args: dict[str, Any], section: str, output_dir: str | Path, seed: int) -> Any:
    """A TRL config from params: the user's fields by their own names, plus what the pipeline controls
    (output dir, MLflow reporting, seed, CPU/GPU precision)."""
    import torch

    from safealign.config import trainer_args

    args = dict(params_args)
    cuda = torch.cuda.is_available()
    # TRL configs default bf16=True, which fails on CPU; keep the user's choice only where a GPU runs.
    args["bf16"] = bool(args.get("bf16", True)) and cuda and torch.cuda.is_bf16_supported()
    return trainer_args(
        cls,
        args,
        section,
        output_dir=str(output_dir),
        report_to=["mlflow"],
        seed=seed,
        use_cpu=not cuda,
    )
