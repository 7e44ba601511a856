"""Named experiments: a file of dotted params keys (configs/experiments/<name>.yaml) applied on top of
params.yaml, the way `dvc exp run -S` applies them, so every value lands in params.yaml and in `dvc exp show`.

    python -m safealign.experiments tiny            # dvc exp run --temp -n tiny -S <every key of the file>
    python -m safealign.experiments tiny --print    # only print that command
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from safealign.config import ConfigError, read_yaml, with_this_python

EXPERIMENTS = Path("configs/experiments")


def overrides(name: str, root: str | Path = ".") -> dict[str, Any]:
    path = Path(root) / EXPERIMENTS / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (Path(root) / EXPERIMENTS).glob("*.yaml"))
        raise ConfigError(f"no experiment '{name}' ({path} is missing; known: {known})")
    tree = read_yaml(path) or {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of dotted params keys")
    return dict(tree)


def override_value(value: Any, key: str = "") -> str:
    """A value in the grammar of `dvc exp run -S` (Hydra's override grammar): JSON, except that a mapping's keys
    are bare identifiers (`{harmful:14,benign:2}`; Hydra refuses `{"harmful":14}`)."""
    if isinstance(value, dict):
        for k in value:
            if not (isinstance(k, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)):
                raise ConfigError(f"{key}: key {k!r} cannot be passed to `dvc exp run -S` (not an identifier)")
        return "{" + ",".join(f"{k}:{override_value(v, f'{key}.{k}')}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(override_value(v, key) for v in value) + "]"
    return json.dumps(value)


def dvc_command(name: str, root: str | Path = ".") -> list[str]:
    """`dvc exp run` in a temporary copy of the workspace (--temp: the workspace's params and models stay as they
    are), named after the experiment, each key as `-S key=value`."""
    sets = [a for k, v in overrides(name, root).items() for a in ("-S", f"{k}={override_value(v, k)}")]
    return ["dvc", "exp", "run", "--temp", "-n", name, *sets]


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        cmd = dvc_command(argv[0])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if "--print" in argv:
        print(shlex.join(cmd))
        return 0
    return subprocess.run([sys.executable, "-m", *cmd], env=with_this_python(os.environ)).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
