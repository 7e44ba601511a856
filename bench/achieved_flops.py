"""Achieved FLOP/s of each stage of the last run (metrics/compute/*.json) against the measured matmul peak."""

import json
from pathlib import Path

from cpu_peak import peak_gflops

if __name__ == "__main__":
    peak = max(peak_gflops() for _ in range(3)) * 1e9
    print(f"measured peak {peak / 1e9:.1f} GFLOP/s")
    for f in sorted(Path("metrics/compute").glob("*.json")):
        r = json.loads(f.read_text())
        if r["flops"] and r["wall_s"]:
            achieved = r["flops"] / r["wall_s"]
            print(
                f"{r['stage']:<22} {r['flops'] / 1e12:8.1f} TFLOP in {r['wall_s']:7.1f}s = "
                f"{achieved / 1e9:6.1f} GFLOP/s ({achieved / peak:5.1%} of peak)"
            )
