"""Where the pipeline keeps things, relative to the repository root: one place for every path dvc.yaml names.
(tests/test_layers.py fails on a path literal of these folders anywhere else in src/, tasks/ or flows/.)"""

BASE, SFT, REWARD, DETECTOR = "models/base", "models/sft", "models/reward", "models/detector"
DETECTION, JUDGE_REPORT = "metrics/detection.json", "metrics/judge.json"
VALIDATION, REWARD_METRICS = "metrics/validation.json", "metrics/reward.json"
COST, HEADLINE = "metrics/cost.json", "metrics/headline.json"
COMPUTE, CURVES, EVAL_METRICS, PLOTS = "metrics/compute", "metrics/curves", "metrics/eval", "metrics/plots"
DETECTION_PLOT, ARMS_PLOT = f"{PLOTS}/detection.csv", f"{PLOTS}/arms.csv"
REPORT_HTML, REPORT_MD = "reports/report.html", "reports/report.md"
CHECKPOINTS = "checkpoints"


def ppo_model(arm: str) -> str:
    return f"models/ppo/{arm}"


def grpo_model(arm: str) -> str:
    return f"models/grpo/{arm}"


def compute_record(stage: str, arm: str | None = None) -> str:
    """metrics/compute/<stage>.json, or <stage>_<arm>.json for a per-arm stage."""
    return f"{COMPUTE}/{stage}{f'_{arm}' if arm else ''}.json"


def curve(arm: str) -> str:
    """An RL arm's safety curve (harmful rate against cumulative compute)."""
    return f"{CURVES}/{arm}.json"


def curve_plot(arm: str) -> str:
    return f"{PLOTS}/curve_{arm}.csv"


def eval_metrics(arm: str) -> str:
    """An arm's evaluation: every rate with its interval, overall and per language."""
    return f"{EVAL_METRICS}/{arm}.json"


def responses(arm: str) -> str:
    """An arm's judged answers, one JSON line per prompt."""
    return f"eval/{arm}/responses.jsonl"


def summary(name: str) -> str:
    """The small DVC metrics file of a stage (what `dvc metrics show` lists)."""
    return f"metrics/summary/{name}.json"
