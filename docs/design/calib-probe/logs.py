# Are numpy's vectorized log/log1p bitwise equal to libm (math.*) here? And float32 log numpy vs torch.
# run: /work/venv-calib/bin/python logs.py
import math, numpy as np, torch
rng = np.random.default_rng(0); x = rng.random(50000) * 4 + 1e-6; y = rng.random(50000) - 0.49
print("np.log   f64 vs math.log  : mismatches", int((np.log(x) != np.array([math.log(v) for v in x])).sum()), "/ 50000")
print("np.log1p f64 vs math.log1p: mismatches", int((np.log1p(y) != np.array([math.log1p(v) for v in y])).sum()), "/ 50000")
x32 = x.astype(np.float32)
print("np.log f32 vs torch.log f32:", int((np.log(x32) != torch.log(torch.from_numpy(x32)).numpy()).sum()), "/ 50000;",
      "np.log f32 vs f32(math.log(f64)):", int((np.log(x32) != np.array([math.log(float(v)) for v in x32], dtype=np.float32)).sum()))
print("numpy SIMD targets:", np.show_runtime.__module__ and [d for d in np.__config__.CONFIG.get("SIMD Extensions", {}).get("found", [])][:8])
