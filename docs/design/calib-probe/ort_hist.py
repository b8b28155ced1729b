# ORT HistogramCollector probes: growth, edges, dtypes, refusals.  run: /work/venv-calib/bin/python ort_hist.py
import io, contextlib, numpy as np
from onnxruntime.quantization.calibrate import HistogramCollector, entropy as ort_entropy
def quiet(f, *a):
    with contextlib.redirect_stdout(io.StringIO()): return f(*a)
rng = np.random.default_rng(0)
b1 = rng.standard_normal(1000).astype(np.float32)
b2 = (3 * rng.standard_normal(1000)).astype(np.float32)

print("== collect_value (entropy/distribution/percentile-asym): growth")
c = HistogramCollector("entropy", False, 128, 128, 99.99, "same")
quiet(c.collect, {"t": [b1]})
h, e, mn, mx, T = c.histogram_dict["t"]
print("batch1: bins", h.size, "T", repr(T), T.dtype, "edges dtype", e.dtype, "hist dtype", h.dtype)
print("  edges == float32 linspace(-T,T):", np.array_equal(e, np.linspace(-T, T, 129)))
# hypothesis: e[i] = f32(f32(i)*f32(2T/128)) + (-T), last = T
step = np.float32(np.float32(T) - np.float32(-T)) / np.float32(128)
hyp = (np.arange(129, dtype=np.float32) * step + np.float32(-T)).astype(np.float32); hyp[-1] = T
print("  edges == i*step + start (unfused, f32), last=stop:", np.array_equal(e, hyp))
quiet(c.collect, {"t": [b2]})
h2, e2, mn2, mx2, T2 = c.histogram_dict["t"]
ostride = np.float32(2) * T / np.float32(128)
half = int((np.float32(np.abs(b2).max()) - T) // ostride + 1)
print("batch2: bins", h2.size, "expected", 128 + 2 * half, "T2", repr(T2), "== half*stride+T:", T2 == np.float32(half * ostride + T))
print("  counts sum", h2.sum(), "(2000 expected)")
print("  old hist added at middle slice; edges float32 linspace(-T2,T2):", np.array_equal(e2, np.linspace(-T2, T2, h2.size + 1)))
# batches inside one collect() call are concatenated: same as single collect of concatenation
c2 = HistogramCollector("entropy", False, 128, 128, 99.99, "same"); quiet(c2.collect, {"t": [b1, b1[::-1]]})
print("two batches in one collect -> bins", c2.histogram_dict["t"][0].size, "sum", c2.histogram_dict["t"][0].sum())

print("== collect_absolute_value (percentile symmetric): arange growth")
c = HistogramCollector("percentile", True, 128, 128, 99.99, "same")
quiet(c.collect, {"t": [b1]})
h, e, mn, mx = c.histogram_dict["t"]
print("batch1: first edge = min|x|:", e[0] == np.abs(b1).min(), repr(e[0]), "last", repr(e[-1]))
quiet(c.collect, {"t": [b2]})
h2, e2, mn2, mx2 = c.histogram_dict["t"]
w = e[1] - e[0]; start = e[-1] + w; stop = np.abs(b2).max() + w
ar = np.arange(start, stop, w)
print("batch2: bins", h2.size, "= 128 +", ar.size, "arange dtype", ar.dtype, "sum", h2.sum(), "of 2000 (values < first edge dropped:", (np.abs(b2) < e[0]).sum(), ")")
n = int(np.ceil((float(stop) - float(start)) / float(w)))
d = np.float32(np.float32(start + w) - start)
hyp = np.float32(start) + np.arange(n, dtype=np.float32) * d   # f32 fill hypothesis
hyp64 = (np.float64(start) + np.arange(n) * np.float64(d)).astype(np.float32)
print("  arange len == ceil((stop-start)/w) in f64:", n == ar.size, "; values == start+i*delta f32:", np.array_equal(hyp, ar), "; via f64:", np.array_equal(hyp64, ar))
