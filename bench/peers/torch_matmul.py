"""PyTorch peer for bench/kernels.bench.ts: float32 matmul throughput on CPU for the same shapes and layouts.
Usage: python torch_matmul.py THREADS M,K,N[,layout] ...  (layout: nt = A[M,K] @ W[N,K]^T, nn = A @ B[K,N],
tn = A[K,M]^T @ B[K,N]). Prints one JSON line: {"M,K,N,layout": GFLOP/s, ...}."""
import json
import sys
import time

import torch

torch.set_num_threads(int(sys.argv[1]))
out = {}
for spec in sys.argv[2:]:
    M, K, N, layout = spec.split(",")
    M, K, N = int(M), int(K), int(N)
    g = torch.Generator().manual_seed(0)
    if layout == "nt":
        a, b = torch.randn(M, K, generator=g), torch.randn(N, K, generator=g)
        f = lambda: a @ b.T  # noqa: E731
    elif layout == "nn":
        a, b = torch.randn(M, K, generator=g), torch.randn(K, N, generator=g)
        f = lambda: a @ b  # noqa: E731
    else:
        a, b = torch.randn(K, M, generator=g), torch.randn(K, N, generator=g)
        f = lambda: a.T @ b  # noqa: E731
    for _ in range(3):
        f()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.5 or n < 5:
        f()
        n += 1
    sec = (time.perf_counter() - t0) / n
    out[spec] = 2 * M * K * N / sec / 1e9
print(json.dumps(out))
