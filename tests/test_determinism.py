"""Same seed, same numbers: a tiny RL stage run twice on the same machine writes identical weights, curve and
compute counts."""

import json
import shutil

from .conftest import dvc


def test_ppo_stage_twice_gives_identical_outputs(tiny_repo, tmp_path):
    runs = []
    for i in range(2):
        repo = tmp_path / f"run{i}"
        shutil.copytree(tiny_repo, repo, symlinks=True)
        out = dvc(repo, "repro", "--force", "--single-item", "ppo@pure_rl", check=False)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        curve = json.loads((repo / "metrics/curves/pure_rl.json").read_text())
        compute = json.loads((repo / "metrics/compute/ppo_pure_rl.json").read_text())
        runs.append(
            {
                "adapter": (repo / "models/ppo/pure_rl/adapter_model.safetensors").read_bytes(),
                "flags": [p["flags"] for p in curve["points"]],
                "history": compute["extra"]["history"],
                "tokens": (compute["trained_tokens"], compute["forward_tokens"], compute["generated_tokens"]),
            }
        )
    assert runs[0]["adapter"] == runs[1]["adapter"]
    assert runs[0]["flags"] == runs[1]["flags"] and runs[0]["history"] == runs[1]["history"]
    assert runs[0]["tokens"] == runs[1]["tokens"]
