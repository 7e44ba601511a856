"""Serve the hybrid-train deployments from this checkout: `nightly` (cron), `headline` (the named bigger
experiment) and `manual` (ad hoc).

    export PREFECT_API_URL=http://127.0.0.1:4200/api     # a running `prefect server start`
    python -m flows.serve                                 # registers all three and executes their runs while it lives
    prefect deployment run hybrid-train/manual --watch

Each run executes in a subprocess in this directory, so it uses this checkout's dvc.yaml, params.yaml and data.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron

from flows.hybrid_train import hybrid_train

NIGHTLY_CRON = os.environ.get("SAFEALIGN_NIGHTLY_CRON", "0 2 * * *")  # 02:00 every night
TIMEZONE = os.environ.get("SAFEALIGN_TIMEZONE", "UTC")


def deployments():
    # One hybrid-train run at a time: a second one is cancelled at once, not queued behind a 30-minute run
    # (the run lock in the flow also refuses it, with the holder's pid, for runs started outside Prefect).
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW)
    nightly = hybrid_train.to_deployment(
        name="nightly",
        schedule=Cron(NIGHTLY_CRON, timezone=TIMEZONE),
        parameters={"ingest": True, "gate": True},
        concurrency_limit=one_at_a_time,
        tags=["safealign", "nightly"],
        description="Ingest new red-team data from the S3 drop, retrain if anything changed, promote only without "
        "regression",
    )
    headline = hybrid_train.to_deployment(
        name="headline",
        parameters={"experiment": "headline"},
        concurrency_limit=one_at_a_time,
        tags=["safealign", "headline"],
        description="The named headline experiment (configs/experiments/headline.yaml): the bigger run, <= 90 min on "
        "2 CPU cores",
    )
    manual = hybrid_train.to_deployment(
        name="manual",
        concurrency_limit=one_at_a_time,
        tags=["safealign"],
        description="Ad hoc run; pass --params '{\"overrides\": {...}}' (and ingest/gate if wanted)",
    )
    return nightly, headline, manual


if __name__ == "__main__":
    serve(*deployments())
