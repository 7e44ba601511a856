"""One Prefect task per step. Each runs its stage through DVC (`dvc repro --single-item <stage>`, by DVC's Python
API), so a Prefect run and a plain `dvc repro` share the cache, the lock file and the run-cache. The stage's command
(`python -m safealign.stages.<name>`) runs in this process rather than a new interpreter (`stages_in_process`).

Training steps never retry: a failed SFT or PPO should fail the flow loudly, not burn compute again.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import os
import re
import shlex
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task


def stage_graph(repo: Path) -> dict[str, list[str]]:
    """{stage: the stages it depends on}, in DVC's own execution order (the post-order walk `dvc repro` uses).
    DVC's graph has an edge from each stage to the stages whose outputs it reads."""
    from dvc.repo import Repo
    from dvc.repo.reproduce import plan_repro

    with Repo(str(repo)) as r:
        graph = r.index.graph
        order = [s for s in plan_repro(graph) if getattr(s, "cmd", None)]
        return {s.name: sorted(d.name for d in graph.successors(s) if getattr(d, "cmd", None)) for s in order}


def stage_order(repo: Path) -> list[str]:
    return list(stage_graph(repo))


# a dvc.yaml command that is one of our stage entry points: `python -m safealign.stages.<name> [args]`
STAGE_CMD = re.compile(r"python -m (safealign\.stages\.[a-z_]+)((?: [^;&|<>`$]+)?)")


def repro(
    stage: str,
    repo: Path,
    env: dict[str, str],
    force: bool = False,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> bool:
    """Run one DVC stage (`dvc repro --single-item`, through DVC's Python API), its log in the Prefect log (or in
    `logger`); True if it ran or was restored from the run-cache, False if DVC skipped it as unchanged.

    DVC does everything it does for `dvc repro`: the changed-check, the run-cache, the locks, hashing the outputs and
    writing dvc.lock. Only the command itself runs in this interpreter (see `stages_in_process`)."""
    from dvc.repo import Repo

    from safealign.config import with_this_python

    logger = logger or get_run_logger()
    logger.info("$ dvc repro --single-item %s%s", stage, " --force" if force else "")
    run_env = with_this_python(os.environ | env)  # for a command that still goes to a shell
    # from the repository's root, as the CLI: DVC resolves some output paths against the working directory
    with contextlib.chdir(repo), Repo() as dvc_repo, forwarded("dvc", logger), stages_in_process(logger):
        try:
            done = dvc_repo.reproduce(stage, single_item=True, force=force, run_env=run_env)
        except Exception as e:
            raise RuntimeError(f"stage {stage} failed: {_reason(e)}") from e
    return bool(done)


def _reason(e: BaseException) -> str:
    chain = []
    while e is not None:
        chain.append(str(e))
        e = e.__cause__ or e.__context__
    return ": ".join(dict.fromkeys(c for c in chain if c))


@contextmanager
def stages_in_process(logger: logging.Logger | logging.LoggerAdapter):
    """While open, DVC runs a stage whose command is `python -m safealign.stages.<name> [args]` by calling that
    module's `main(args)` here, in the flow's worker, with the environment and working directory DVC gives the
    command; any other command still goes to a shell. A fresh interpreter per stage spends 6-8 s importing torch,
    transformers, peft and mlflow before any work (most of a tiny stage). What a stage sets in the environment is
    undone afterwards; every stage seeds what it draws, as it must in a fresh process (whose torch seed is random)."""
    import dvc.stage.run as dvc_run
    from dvc.stage.exceptions import StageCmdFailedError

    shell_run = dvc_run._run

    def run(executable, cmd, **kwargs):
        m = STAGE_CMD.fullmatch(cmd.strip())
        if not m:
            return shell_run(executable, cmd, **kwargs)
        code, error = call_stage_main(m[1], shlex.split(m[2]), Path(kwargs["cwd"]), kwargs["env"], logger)
        if code:
            raise StageCmdFailedError(cmd, code) from error

    dvc_run._run = run
    try:
        yield
    finally:
        dvc_run._run = shell_run


class _Forward(logging.Handler):
    """Hands log records to the Prefect task's logger."""

    def __init__(self, target: logging.Logger | logging.LoggerAdapter):
        super().__init__(logging.INFO)
        self.target = target
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.target.log(record.levelno, self.format(record))


@contextmanager
def forwarded(name: str, target: logging.Logger | logging.LoggerAdapter):
    """While open, logger `name`'s INFO and above go to `target` (only there)."""
    source = logging.getLogger(name)
    saved = (source.level, source.propagate)
    handler = _Forward(target)
    source.setLevel(logging.INFO)
    source.propagate = False
    source.addHandler(handler)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.level, source.propagate = saved


def call_stage_main(
    module: str, argv: list[str], cwd: Path, env: dict[str, str], logger: logging.Logger | logging.LoggerAdapter
) -> tuple[int, BaseException | None]:
    """`python -m <module> <argv>` in this interpreter: its exit code (2 for a known input error, as run_main) and
    the error that ended it."""
    from safealign.config import LOGGING_ENV, ConfigError
    from safealign.data import DataError

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(env | {LOGGING_ENV: "inherit"})
    os.chdir(cwd)
    try:
        with forwarded("safealign", logger):
            importlib.import_module(module).main(argv)
        return 0, None
    except (ConfigError, DataError, FileNotFoundError) as e:
        logger.error("error: %s", e)
        return 2, e
    except SystemExit as e:
        return (e.code if isinstance(e.code, int) else 1), e
    except Exception as e:
        logger.exception("%s failed", module)
        return 1, e
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        gc.collect()


@task(name="validate-data", task_run_name="validate")
def validate_data(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Great Expectations suites on every dataset; stops the flow before any training on bad data."""
    return repro("validate", repo, env, force)


@task(name="prepare-model", task_run_name="prepare_model")
def prepare_model(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Materialize the profile's base model as safetensors (cached by DVC)."""
    return repro("prepare_model", repo, env, force)


@task(name="sft", task_run_name="sft")
def train_sft(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Supervised fine-tuning on safe demonstrations."""
    return repro("sft", repo, env, force)


@task(name="reward-model", task_run_name="reward")
def train_reward(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Reward model on the preference pairs."""
    return repro("reward", repo, env, force)


@task(name="ppo", task_run_name="{stage}")
def train_ppo(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """PPO for one RL arm against the safety reward."""
    return repro(stage, repo, env, force)


@task(name="evaluate", task_run_name="{stage}")
def evaluate(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Cross-lingual evaluation of one arm by the held-out judge."""
    return repro(stage, repo, env, force)


@task(name="cost", task_run_name="cost")
def account_cost(repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """Compute and money per stage and arm; the headline numbers."""
    return repro("cost", repo, env, force)


@task(name="stage", task_run_name="{stage}")
def other_stage(stage: str, repo: Path, env: dict[str, str], force: bool = False) -> bool:
    """A stage of dvc.yaml without a dedicated task."""
    return repro(stage, repo, env, force)
