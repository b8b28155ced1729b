# How np.arange(f32 start, f32 stop, f32 step) fills (used by ORT's and ModelOpt's numpy histogram growth).
# run: /work/venv-calib/bin/python np_arange.py
import numpy as np
rng = np.random.default_rng(1)
print("dtype of np.arange(f32,f32,f32):", np.arange(np.float32(1), np.float32(2), np.float32(0.1)).dtype)
bad_val = len32 = len64 = differ = 0
N = 20000
for _ in range(N):
    w = np.float32(rng.uniform(1e-4, 0.1)); s = np.float32(rng.uniform(0, 10)) + w
    k = int(rng.integers(1, 200))
    stop = np.float32(s + np.float32(k) * w) + np.float32(rng.choice([0, 1e-7, -1e-7, 1e-6]))  # near-integer multiples
    ar = np.arange(s, stop, w)
    l32 = max(0, int(np.ceil(np.float32(np.float32(stop - s) / w))))       # length from f32 scalar ops
    l64 = max(0, int(np.ceil((float(stop) - float(s)) / float(w))))         # length in f64
    len32 += l32 != ar.size; len64 += l64 != ar.size; differ += l32 != l64
    S = float(s); d = float(np.float32(s + w)) - S                       # second element is f32(s+w)
    bad_val += not np.array_equal(S + np.arange(ar.size) * d, ar)
print(f"{N} cases near integer multiples: length mismatches  f32-rule {len32}  f64-rule {len64}  (rules disagree in {differ})")
print("value mismatches for  v[i] = f64(s) + i*(f64(f32(s+w)) - f64(s)) :", bad_val)
