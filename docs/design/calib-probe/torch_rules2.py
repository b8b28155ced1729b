# torch.linspace / torch.arange float32 fill rules on CPU (vectorization width matters for arange).
# run: /work/venv-calib/bin/python torch_rules2.py
import numpy as np, torch
torch.set_num_threads(1)
print("torch cpu capability:", torch.backends.cpu.get_cpu_capability())
g = torch.Generator().manual_seed(0); f32 = np.float32
bad_lin = bad_fma = 0
for t in range(300):
    n = int(torch.randint(1, 5000, (1,), generator=g)); m = torch.rand(1, generator=g)[0] * 100
    ref = torch.linspace(0, m, n + 1).numpy(); M = m.numpy(); st = f32(M) / f32(n); steps = n + 1
    i = np.arange(steps); k = (steps - 1 - i)
    first = (st * i.astype(f32)).astype(f32)
    unf = np.where(i < steps // 2, first, (M - (st * k.astype(f32)).astype(f32)).astype(f32))
    fma = np.where(i < steps // 2, first, (np.float64(M) - np.float64(st) * k).astype(f32))
    bad_lin += not np.array_equal(unf, ref); bad_fma += not np.array_equal(fma, ref)
print(f"linspace(0,m,n+1) f32: unfused rule mismatches {bad_lin}/300, fused (fma) second-half rule mismatches {bad_fma}/300")
V = {"AVX2": 8, "AVX512": 16, "DEFAULT": 8}.get(torch.backends.cpu.get_cpu_capability(), 8)
bad = 0
for t in range(1000):
    w = (torch.rand(1, generator=g)[0] * 0.05 + 1e-4).to(torch.float32); e = torch.rand(1, generator=g)[0] * 30 + w
    ar = torch.arange(0, e, w).numpy(); n = ar.size; W = float(w); i = np.arange(n)
    chunk = (n // (2 * V)) * (2 * V)                       # vectorized part: pairs of vectors
    base = (np.float64((i // V) * V) * W).astype(f32)       # f32(start + step*idx0)
    vec = (base.astype(np.float64) + (i % V) * W).astype(f32)
    sca = (i * W).astype(f32)
    hyp = np.where(i < chunk, vec, sca)
    bad += not np.array_equal(hyp, ar)
print(f"arange(0,e,w) f32 rule (vector lanes f32(f32(idx0*w)+j*w), tail f32(i*w)), vec width {V}: mismatches {bad}/1000")
