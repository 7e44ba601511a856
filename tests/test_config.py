import pytest
import yaml

from safealign.config import ConfigError, flatten, load_params, trainer_args

from .conftest import ROOT


def write(tmp_path, tree):
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(tree))
    return p


def test_repository_params_load():
    p = load_params(ROOT / "params.yaml")
    assert p.model.profile == "smollm2"
    assert set(p.ppo.arms) == {"pure_rl", "hybrid"}
    assert set(p.evaluate.arms) == {"base", "sft_only", "pure_rl", "hybrid"} and not p.grpo.arms
    assert p.cost.target_harmful_rate is None
    assert set(p.data.train_languages) <= set(p.data.languages)


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"sft\.learning_rat"):
        load_params(write(tmp_path, {"sft": {"learning_rat": 1}}))


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"evaluate\.batch_size: expected int, got str"):
        load_params(write(tmp_path, {"evaluate": {"batch_size": "16"}}))
    with pytest.raises(ConfigError, match=r"data\.languages: expected a list"):
        load_params(write(tmp_path, {"data": {"languages": "en"}}))


def test_int_accepted_for_float_and_overrides(tmp_path):
    p = load_params(write(tmp_path, {"cost": {"usd_per_cpu_hour": 1}}), {"model.profile": "tiny"})
    assert p.cost.usd_per_cpu_hour == 1.0 and isinstance(p.cost.usd_per_cpu_hour, float)
    assert p.model.profile == "tiny"


def test_train_languages_must_be_evaluated(tmp_path):
    with pytest.raises(ConfigError, match="not in data.languages"):
        load_params(write(tmp_path, {"data": {"languages": ["en"], "train_languages": ["en", "zh"]}}))


def test_trainer_args_names_the_bad_field():
    from trl import SFTConfig

    with pytest.raises(ConfigError, match=r"sft\.args has unknown SFTConfig field\(s\) \['max_stepz'\]"):
        trainer_args(SFTConfig, {"max_stepz": 3}, "sft", output_dir="x")
    with pytest.raises(ConfigError, match="pipeline controls"):
        trainer_args(SFTConfig, {"output_dir": "y"}, "sft", output_dir="x")
    cfg = trainer_args(SFTConfig, {"max_steps": 3}, "sft", output_dir="x", use_cpu=True, bf16=False)
    assert cfg.max_steps == 3


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": 2}}, "e": {}}) == {"a.b": 1, "a.c.d": 2, "e": {}}


def test_trainer_args_types_are_checked_against_the_trl_field():
    """`sft.args.learning_rate: fast` used to pass validation and die minutes later inside torch."""
    from trl import SFTConfig

    with pytest.raises(ConfigError, match=r"sft\.args\.learning_rate: expected float, got str 'fast'"):
        trainer_args(SFTConfig, {"learning_rate": "fast"}, "sft", output_dir="x")
    with pytest.raises(ConfigError, match=r"sft\.args\.save_strategy: expected .*SaveStrategy \| str, got bool False"):
        trainer_args(SFTConfig, {"save_strategy": False}, "sft", output_dir="x")
    with pytest.raises(ConfigError, match=r"sft\.args is rejected by SFTConfig: .*bogus"):
        trainer_args(SFTConfig, {"save_strategy": "bogus"}, "sft", output_dir="x", use_cpu=True, bf16=False)


def test_params_are_read_as_yaml_1_2(tmp_path):
    """`dvc exp run -S` rewrites params.yaml with ruamel and drops the quotes of save_strategy: "no"; YAML 1.1
    (PyYAML) would read the bare `no` as False."""
    p = tmp_path / "params.yaml"
    p.write_text("sft:\n  args:\n    save_strategy: no\n    learning_rate: 1e-4\n")
    params = load_params(p)
    assert params.sft.args["save_strategy"] == "no" and params.sft.args["learning_rate"] == 1e-4


def test_named_experiment_tiny_is_small_and_valid():
    from safealign import experiments

    over = experiments.overrides("tiny", ROOT)
    p = load_params(ROOT / "params.yaml", over)
    assert p.model.profile == "tiny" and len(p.data.languages) == 2 and p.sft.args["max_steps"] <= 3
    assert p.ppo.args["total_episodes"] <= 16 and p.evaluate.items_per_language["harmful"] == 14
    cmd = experiments.dvc_command("tiny", ROOT)
    assert cmd[:6] == ["dvc", "exp", "run", "--temp", "-n", "tiny"] and 'data.languages=["en","zh"]' in cmd


@pytest.mark.parametrize("name", ["tiny", "headline"])
def test_named_experiments_wire_every_arm(name):
    """The default run leaves the GRPO and equal-compute arms out (it stays within 30 min); `tiny` and `headline`
    train and evaluate them."""
    from safealign import experiments

    p = load_params(ROOT / "params.yaml", experiments.overrides(name, ROOT))
    assert p.grpo.arms == {"hybrid_grpo": "models/sft"} and p.evaluate.arms["hybrid_grpo"] == "models/grpo/hybrid_grpo"
    assert p.ppo.equal_compute == {"pure_rl_equal": "models/base"}
    assert p.evaluate.arms["pure_rl_equal"] == "models/ppo/pure_rl_equal"
    assert set(p.evaluate.arms) == {"base", "sft_only", "pure_rl", "hybrid", "hybrid_grpo", "pure_rl_equal"}
    assert not load_params(ROOT / "params.yaml").ppo.equal_compute


def test_equal_compute_arm_must_not_shadow_a_ppo_arm():
    with pytest.raises(ConfigError, match="ppo.equal_compute names \\['pure_rl'\\]"):
        load_params(ROOT / "params.yaml", {"ppo.equal_compute": {"pure_rl": "models/base"}})
    with pytest.raises(ConfigError, match="needs ppo.arms pure_rl and hybrid"):
        load_params(
            ROOT / "params.yaml", {"ppo.equal_compute": {"x": "models/base"}, "ppo.arms": {"hybrid": "models/sft"}}
        )


def test_headline_experiment_is_the_bigger_run():
    from safealign import experiments

    default = load_params(ROOT / "params.yaml")
    head = load_params(ROOT / "params.yaml", experiments.overrides("headline", ROOT))
    assert head.data.languages == default.data.languages
    assert head.model.profile == "gemma3-270m"  # chosen by measured competence (reports/competence/)
    for section in ("sft", "reward"):
        assert getattr(head, section).args["max_steps"] > getattr(default, section).args["max_steps"]
    assert head.ppo.args["total_episodes"] > default.ppo.args["total_episodes"]
    assert head.detect.reward_rows > default.detect.reward_rows
    for kind, n in default.evaluate.items_per_language.items():
        assert head.evaluate.items_per_language[kind] >= n


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "configs/experiments").glob("*.yaml")))
def test_named_experiment_command_parses_as_dvc_reads_it(name):
    """`dvc exp run -S` parses each value with Hydra's override grammar: every key of every experiment file must come
    back as the value in the file (a quoted mapping key, `{"harmful":14}`, is a syntax error there)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from safealign import experiments

    cmd = experiments.dvc_command(name, ROOT)
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-S"]
    parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(sets)}
    assert parsed == experiments.overrides(name, ROOT)
    with pytest.raises(ConfigError, match="not an identifier"):
        experiments.override_value({"a b": 1}, "x")
    with pytest.raises(ConfigError, match="no experiment 'huge'"):
        experiments.overrides("huge", ROOT)
