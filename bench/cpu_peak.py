"""Measured fp32 matmul peak of this machine (GFLOP/s): the denominator for achieved-FLOP/s (MFU-style) numbers."""

import time

import torch


def peak_gflops(n: int = 2048, repeats: int = 20) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t) / 1e9


if __name__ == "__main__":
    best = max(peak_gflops() for _ in range(3))
    print(f"fp32 matmul peak: {best:.1f} GFLOP/s on {torch.get_num_threads()} threads")
