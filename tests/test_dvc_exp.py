"""`dvc exp run -S` works on every params section, and the DVC views a user opens next are readable."""

import shutil
import subprocess

from safealign.config import load_params

from .conftest import dvc

# One key of every params section. Values that equal the current ones still make DVC rewrite params.yaml with
# its own YAML writer (ruamel, YAML 1.2), which drops the quotes of `save_strategy: "no"`; the keys that do change
# are read only by cheap stages (validate re-parses everything; cost and report recompute).
SETS = [
    "seed=42",
    "model.trust_remote_code=false",
    "data.max_response_chars=401",
    "sft.args.save_strategy=no",
    "reward.args.save_strategy=no",
    "ppo.args.save_strategy=no",
    "grpo.args.save_strategy=no",
    "curve.batch_size=64",
    "detect.guard_max_new_tokens=8",
    "evaluate.batch_size=64",
    "cost.usd_per_cpu_hour=0.05",
    "gate.tolerance.harmful_rate=0.04",
    "mlflow.log_models=true",
]


def test_exp_run_with_a_key_of_every_section(tiny_repo, tmp_path):
    repo = tmp_path / "exp"
    shutil.copytree(tiny_repo, repo, symlinks=True)
    args = [a for s in SETS for a in ("-S", s)]
    out = dvc(repo, "exp", "run", *args, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    ran = {line.split("'")[1] for line in out.stdout.splitlines() if line.startswith("Running stage")}
    assert "validate" in ran and "cost" in ran and not {"sft", "reward", "ppo@hybrid"} & ran, ran
    params = load_params(repo / "params.yaml")  # YAML 1.2: the bare `no` DVC wrote is still the string "no"
    assert params.sft.args["save_strategy"] == "no" and params.cost.usd_per_cpu_hour == 0.05
    assert "save_strategy: no" in (repo / "params.yaml").read_text()  # DVC did drop the quotes
    show = dvc(repo, "exp", "show", "--md", "--no-pager")
    assert show.returncode == 0 and "cost.usd_per_cpu_hour" in show.stdout and "…" not in show.stdout
    diff = dvc(repo, "params", "diff", "--md")
    assert "cost.usd_per_cpu_hour" in diff.stdout and "0.0425" in diff.stdout and "0.05" in diff.stdout
    subprocess.run(["git", "status", "--short"], cwd=repo, check=True)
