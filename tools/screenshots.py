"""Screenshots, in headless Chromium, of what a user opens after a run: the MLflow runs view (model-training
view of experiment `safealign`), the Prefect flow-run graph of the latest hybrid-train run, and `dvc plots show`.

    python tools/screenshots.py --out reports/screenshots [--prefect-home .prefect]

Needs Debian's chromium (/usr/bin/chromium). Starts `mlflow ui` and `prefect server` on free loopback ports for the
time of the shots, and stops them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url: str, timeout: float = 120) -> None:
    t = time.time()
    while time.time() - t < timeout:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(url)


def shot(url: str, out: Path, size: str = "1600,1000", budget_ms: int = 20000) -> None:
    profile = out.with_suffix(".chromium")
    cmd = [
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={size}",
        f"--screenshot={out}",
        f"--virtual-time-budget={budget_ms}",
        url,
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=180)
    subprocess.run(["rm", "-rf", str(profile)], check=False)
    print(f"{out} <- {url}")


def server(cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=os.environ | env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("reports/screenshots"))
    ap.add_argument("--prefect-home", default=".prefect")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    venv = Path(sys.executable).parent
    procs = []
    try:
        # MLflow: the runs of experiment safealign, in the model-training view
        port = free_port()
        procs.append(
            server(
                [
                    str(venv / "mlflow"),
                    "ui",
                    "--backend-store-uri",
                    "sqlite:///mlflow.db",
                    "--workers",
                    "1",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                {},
            )
        )
        wait(f"http://127.0.0.1:{port}/health")
        exp = json.loads(
            urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/get-by-name?experiment_name=safealign"
            ).read()
        )["experiment"]
        url = f"http://127.0.0.1:{port}/#/experiments/{exp['experiment_id']}/runs?workflowType=machine_learning"
        shot(url, a.out / "mlflow_runs.png")  # workflowType: the "Model training" side of MLflow 3's UI
        # Prefect: the graph of the latest hybrid-train flow run
        port = free_port()
        env = {
            "PREFECT_HOME": str(Path(a.prefect_home).resolve()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",  # the UI asks :4200 otherwise
        }
        procs.append(
            server([str(venv / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env)
        )
        wait(f"http://127.0.0.1:{port}/api/health")
        body = json.dumps({"sort": "START_TIME_DESC", "limit": 1}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/flow_runs/filter", data=body, headers={"Content-Type": "application/json"}
        )
        runs = json.loads(urllib.request.urlopen(req).read())
        if runs:
            shot(
                f"http://127.0.0.1:{port}/runs/flow-run/{runs[0]['id']}",
                a.out / "prefect_run_graph.png",
                size="1600,1100",
            )
        # dvc plots show: the page DVC writes, opened from disk (no network)
        subprocess.run([str(venv / "dvc"), "plots", "show", "--out", str(a.out / "dvc_plots")], check=True)
        shot((a.out / "dvc_plots" / "index.html").resolve().as_uri(), a.out / "dvc_plots.png", size="1400,2400")
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


if __name__ == "__main__":
    main()
