"""Serve the hybrid-train deployments from this checkout: `nightly` (cron) and `manual` (ad hoc).

    export PREFECT_API_URL=http://127.0.0.1:4200/api     # a running `prefect server start`
    python -m flows.serve                                 # registers both and executes their runs while it lives
    prefect deployment run hybrid-train/manual --watch

Each run executes in a subprocess in this directory, so it uses this checkout's dvc.yaml, params.yaml and data.
"""

from __future__ import annotations

import os

from prefect import serve
from prefect.schedules import Cron

from flows.hybrid_train import hybrid_train

NIGHTLY_CRON = os.environ.get("SAFEALIGN_NIGHTLY_CRON", "0 2 * * *")  # 02:00 every night
TIMEZONE = os.environ.get("SAFEALIGN_TIMEZONE", "UTC")


def deployments():
    nightly = hybrid_train.to_deployment(
        name="nightly", schedule=Cron(NIGHTLY_CRON, timezone=TIMEZONE),
        description="Nightly retraining on the current data version", tags=["safealign", "nightly"],
    )  # fmt: skip
    manual = hybrid_train.to_deployment(
        name="manual", description="Ad hoc run; pass --params '{\"overrides\": {...}}'", tags=["safealign"]
    )
    return nightly, manual


if __name__ == "__main__":
    serve(*deployments())
