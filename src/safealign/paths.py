"""Where the pipeline keeps things, relative to the repository root: one place for every path dvc.yaml names."""

BASE, SFT, REWARD, DETECTOR = "models/base", "models/sft", "models/reward", "models/detector"
DETECTION, JUDGE_REPORT = "metrics/detection.json", "metrics/judge.json"
VALIDATION = "metrics/validation.json"
CHECKPOINTS = "checkpoints"


def ppo_model(arm: str) -> str:
    return f"models/ppo/{arm}"


def grpo_model(arm: str) -> str:
    return f"models/grpo/{arm}"


def compute_record(stage: str, arm: str | None = None) -> str:
    """metrics/compute/<stage>.json, or <stage>_<arm>.json for a per-arm stage."""
    return f"metrics/compute/{stage}{f'_{arm}' if arm else ''}.json"


def summary(name: str) -> str:
    """The small DVC metrics file of a stage (what `dvc metrics show` lists)."""
    return f"metrics/summary/{name}.json"
