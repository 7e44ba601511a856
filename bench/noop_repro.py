"""Wall time of `dvc repro` when every stage is up to date (target: under 5 s)."""

import subprocess
import sys
import time

if __name__ == "__main__":
    times = []
    for _ in range(3):
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "dvc", "repro"], capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - t)
    status = "up to date" if "up to date" in out.stdout else "NOT up to date (run the pipeline first)"
    print(
        f"no-op dvc repro: {', '.join(f'{x:.2f}s' for x in times)} (median {sorted(times)[1]:.2f}s); pipeline {status}"
    )
