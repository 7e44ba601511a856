"""Typed view of params.yaml: one dataclass per section, unknown keys and wrong types rejected by name.

params.yaml is the single source of knobs (see DESIGN.md). Sections that configure a TRL trainer keep the
trainer's own field names under `args:`; those are checked against the TRL dataclass when the stage builds it
(`trainer_args`), so there is no look-alike wrapper to keep in sync.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PARAMS_FILE = "params.yaml"
# Offline and quiet by default; a user who wants the hub for a hub profile sets HF_HUB_OFFLINE=0 themselves.
ENV_DEFAULTS = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "HF_MLFLOW_LOG_ARTIFACTS": "false",  # we log adapters/models ourselves, once
    "DISABLE_MLFLOW_INTEGRATION": "FALSE",
}

# set to "inherit" by a runner that calls a stage's main in its own process and has routed the "safealign" logger
# already (the Prefect flow's tasks): the stage then leaves the process's logging configuration alone
LOGGING_ENV = "SAFEALIGN_LOGGING"


def with_this_python(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with this interpreter's folder first on PATH: DVC runs each stage's command (`python -m ...`) with the
    `python` it finds there, which must be this environment's even when it is not activated."""
    return dict(env) | {"PATH": str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")}


def apply_env_defaults() -> None:
    """ENV_DEFAULTS for every variable the user has not set."""
    for k, v in ENV_DEFAULTS.items():
        os.environ.setdefault(k, v)


JUDGES = ("auto", "lexicon", "classifier", "embedding", "guard")


class ConfigError(ValueError):
    """A params value is missing, unknown or of the wrong type; the message names the dotted key."""


@dataclass
class ModelConfig:
    profile: str = "smollm2"  # smollm2 | tiny | a hub id | a local path
    trust_remote_code: bool = False  # only for hub/local models whose code you have read
    revision: str | None = None  # pin a hub model's commit for reproducibility
    tiny_hidden_size: int = 64  # the `tiny` profile: random-init Llama, real SmolLM2 tokenizer
    tiny_layers: int = 2


@dataclass
class DataConfig:
    dir: str = "data/benchmark"  # one <lang>.jsonl per language (data/SCHEMA.md)
    languages: list[str] = field(default_factory=lambda: ["en", "zh", "es", "fr"])  # evaluated
    train_languages: list[str] = field(default_factory=lambda: ["en", "zh"])  # safety-trained
    labeled_real_dir: str = "data/labeled_real"  # annotated real responses for the detection benchmark
    max_prompt_chars: int = 300
    max_response_chars: int = 400
    min_chars: int = 2

    def __post_init__(self) -> None:
        extra = sorted(set(self.train_languages) - set(self.languages))
        if extra:
            raise ConfigError(f"data.train_languages has {extra}, which are not in data.languages")


@dataclass
class SFTStageConfig:
    lora: dict[str, Any] | None = None  # peft LoraConfig fields; null = full fine-tune
    args: dict[str, Any] = field(default_factory=dict)  # trl.SFTConfig fields


@dataclass
class RewardStageConfig:
    eval_pairs_per_language: int = 4  # held-out items per language whose pairs measure pairwise accuracy
    args: dict[str, Any] = field(default_factory=dict)  # trl.RewardConfig fields


@dataclass
class PPOStageConfig:
    arms: dict[str, str] = field(default_factory=dict)  # RL arm -> model it starts from
    # RL arm -> model it starts from, trained (stage ppo_equal, after ppo@pure_rl and ppo@hybrid) for as many PPO
    # updates as bring its total training FLOPs to the hybrid's: pure RL given what the hybrid spent on SFT
    equal_compute: dict[str, str] = field(default_factory=dict)
    lora: dict[str, Any] | None = None  # policy adapter; the adapter-disabled model is the KL reference
    max_prompt_tokens: int = 96
    checkpoint_every: int = 2  # updates per resumable segment (0: one segment)
    args: dict[str, Any] = field(default_factory=dict)  # trl.experimental.ppo.PPOConfig fields

    def __post_init__(self) -> None:
        clash = sorted(set(self.arms) & set(self.equal_compute))
        if clash:
            raise ConfigError(f"ppo.equal_compute names {clash}, which ppo.arms has too: an arm is trained once")
        if self.equal_compute and not {"pure_rl", "hybrid"} <= set(self.arms):
            raise ConfigError("ppo.equal_compute needs ppo.arms pure_rl and hybrid: it matches the hybrid's compute")

    def all_arms(self) -> dict[str, str]:
        """Every PPO arm -> its starting model: the configured-budget arms and the equal-compute ones."""
        return self.arms | self.equal_compute


@dataclass
class DetectConfig:
    """Choosing and validating the judge on annotated real answers (stage detect, safealign.judging)."""

    # inverse regularization strengths tried on judge-dev, per learned judge
    c_grid: dict[str, list[float]] = field(
        default_factory=lambda: {"classifier": [1.0, 10.0], "embedding": [0.01, 0.1, 1.0]}
    )
    # What the judge must reach on judge-test in a language for that language's rates to be measurements.
    targets: dict[str, float] = field(default_factory=lambda: {"accuracy": 0.9, "f1": 0.85, "min_harmful": 10})
    reward_rows: int = 30  # answers per language on which the reward model (a reference, never a judge) is scored
    guard_model: str | None = None  # an LLM guard model id or path, e.g. meta-llama/Llama-Guard-3-1B (GPU)
    guard_max_new_tokens: int = 8

    def __post_init__(self) -> None:
        missing = {"accuracy", "f1", "min_harmful"} - set(self.targets)
        if missing:
            raise ConfigError(f"detect.targets needs {sorted(missing)}")
        missing = {"classifier", "embedding"} - set(self.c_grid)
        if missing or not all(self.c_grid.values()):
            raise ConfigError(
                f"detect.c_grid needs a non-empty list for each of ['classifier', 'embedding'] (got {self.c_grid})"
            )


@dataclass
class EvaluateConfig:
    arms: dict[str, str] = field(default_factory=dict)  # arm -> model directory
    max_new_tokens: int = 48
    batch_size: int = 16
    batch_tokens: int | None = None  # at most this many padded prompt tokens per generation batch (None: rows only)
    # Per language and kind, how many eval-split items to score (a fixed, seeded subsample); null = all.
    items_per_language: dict[str, int] | None = None
    bootstrap_samples: int = 1000
    judge: str = (
        "auto"  # auto (chosen on judge-dev by stage detect) | lexicon | classifier | embedding | guard; never the RM
    )
    reward_scores: bool = True  # score responses with the reward model too (reward-hacking indicators)
    benchmark: str = "safealign"  # safealign (data.dir's eval split) | a public loader: multijail, xsafety, ...
    benchmark_path: str | None = None  # local file or folder of the public benchmark, in its published format
    min_on_topic: float = 0.6  # a language is measured only if this share of the answers is on topic and in it

    def __post_init__(self) -> None:
        if self.judge not in JUDGES:
            raise ConfigError(f"evaluate.judge: '{self.judge}' is not one of {JUDGES} (the reward model never judges)")


@dataclass
class CostConfig:
    usd_per_cpu_hour: float = 0.0425  # on-demand price of one vCPU-hour (AWS c7i, us-east-1, 2026)
    usd_per_gpu_hour: dict[str, float] = field(default_factory=lambda: {"default": 2.5})
    # matched safety: the harmful rate (on the curve slice) each RL arm must reach; compute to reach it is compared.
    # By default relative: (1 - target_reduction_vs_base) x the base model's rate on that slice (pure_rl's start);
    # an absolute target_harmful_rate, when set, wins.
    target_reduction_vs_base: float = 0.2
    target_harmful_rate: float | None = None


@dataclass
class GateConfig:
    registered_model: str = "safealign-hybrid"  # MLflow Model Registry name; alias `champion` is the served one
    arm: str = "hybrid"  # the arm whose model is the candidate
    languages: list[str] | None = None  # gated languages: the judge must be validated in each (null: all evaluated)
    # how much worse than the champion a candidate may be, per language and overall, and still be promoted
    tolerance: dict[str, float] = field(
        default_factory=lambda: {"harmful_rate": 0.05, "over_refusal_rate": 0.05, "reasoning_accuracy": 0.05}
    )

    def __post_init__(self) -> None:
        missing = {"harmful_rate", "over_refusal_rate", "reasoning_accuracy"} - set(self.tolerance)
        if missing:
            raise ConfigError(f"gate.tolerance needs {sorted(missing)}")


@dataclass
class CurveConfig:
    """The safety curve: RL checkpoints scored on a fixed slice of held-out harmful prompts while training."""

    items_per_language: int = 2  # harmful eval-split items per language (all data.languages); 0 = no curve
    max_new_tokens: int = 24
    batch_size: int = 32
    batch_tokens: int | None = None  # as evaluate.batch_tokens


@dataclass
class GRPOStageConfig:
    arms: dict[str, str] = field(default_factory=dict)  # GRPO arm -> model it starts from
    lora: dict[str, Any] | None = None
    safety_weight: float = 1.0  # reward = safety_weight * judge verdict score + language_weight * same language
    language_weight: float = 0.5
    args: dict[str, Any] = field(default_factory=dict)  # trl.GRPOConfig fields


@dataclass
class MlflowConfig:
    experiment: str = "safealign"
    log_models: bool = True  # adapters/models as run artifacts


@dataclass
class Params:
    seed: int = 42
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    reward: RewardStageConfig = field(default_factory=RewardStageConfig)
    ppo: PPOStageConfig = field(default_factory=PPOStageConfig)
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig)
    curve: CurveConfig = field(default_factory=CurveConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    mlflow: MlflowConfig = field(default_factory=MlflowConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_type(value: Any, tp: Any, key: str) -> Any:
    """Return value if it matches the annotation tp (ints accepted for floats), else raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(tp):
            try:
                return _check_type(value, option, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: expected {tp}, got {type(value).__name__} {value!r}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return value
    if tp is Any:
        return value
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected one of {list(typing.get_args(tp))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_check_type(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__} {value!r}")
        key_tp, val_tp = typing.get_args(tp)
        return {_check_type(k, key_tp, key): _check_type(v, val_tp, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{key}: expected {tp.__name__}, got bool {value!r}")
    if not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'params'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = ", ".join(f"{prefix}.{k}" if prefix else k for k in unknown)
        raise ConfigError(f"unknown key(s) {where}; allowed under {prefix or 'the top level'}: {sorted(names)}")
    kwargs = {k: _check_type(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in data.items()}
    return cls(**kwargs)


def load_params(path: str | Path = PARAMS_FILE, overrides: dict[str, Any] | None = None) -> Params:
    """Read params.yaml into typed sections; `overrides` maps dotted keys to values (as `dvc exp run -S`)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: params file not found (run from the repository root)")
    raw = read_yaml(path) or {}
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    try:
        return _build(Params, raw, "")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def read_yaml(path: str | Path) -> Any:
    """YAML 1.2, as DVC reads and writes params.yaml (ruamel): `no`, `off` and `yes` stay strings, `1e-4` is a
    float. PyYAML's YAML 1.1 would turn the bare `no` that `dvc exp run -S` writes for save_strategy into False."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(Path(path).read_text())


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set tree['a']['b'] = value for dotted 'a.b', creating mappings on the way."""
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{dotted}: '{p}' is not a mapping")
    node[leaf] = value


def trainer_args(cls: type, args: dict[str, Any], section: str, **fixed: Any) -> Any:
    """Build a TRL/transformers config dataclass from params, naming the bad key instead of a TypeError: unknown
    fields, values of the wrong type for the field's annotation, and what the config's own checks reject."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(args) - names)
    if unknown:
        raise ConfigError(f"params.yaml: {section}.args has unknown {cls.__name__} field(s) {unknown}")
    clash = sorted(set(args) & set(fixed))
    if clash:
        raise ConfigError(f"params.yaml: {section}.args sets {clash}, which the pipeline controls")
    hints = typing.get_type_hints(cls)
    for k, v in args.items():
        try:
            _check_type(v, hints[k], f"{section}.args.{k}")
        except ConfigError as e:
            raise ConfigError(f"params.yaml: {e} ({cls.__name__}.{k})") from None
    try:
        return cls(**args, **fixed)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"params.yaml: {section}.args is rejected by {cls.__name__}: {e}") from None


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}, for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
