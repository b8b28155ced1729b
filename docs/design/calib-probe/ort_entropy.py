# ORT entropy/percentile/distribution result probes. run: /work/venv-calib/bin/python ort_entropy.py
import io, contextlib, numpy as np
from onnxruntime.quantization.calibrate import HistogramCollector, entropy as ort_entropy
from onnxruntime.quantization.quant_utils import smooth_distribution
def q(f, *a):
    with contextlib.redirect_stdout(io.StringIO()): return f(*a)
rng = np.random.default_rng(0)
x = rng.standard_normal(20000).astype(np.float32); x[:3] = [8.0, -6.0, 7.5]
c = HistogramCollector("entropy", False, 512, 128, 99.99, "same"); q(c.collect, {"t": [x]})
h, e, mn, mx, T = c.histogram_dict["t"]
r = q(c.get_entropy_threshold, c.histogram_dict["t"], 128)
print("entropy thr", r, "dtypes", r[0].dtype, r[1].dtype, "| edges idx of hi:", int(np.searchsorted(e, r[1])), "of", e.size - 1)
# asymmetric candidate: lo = e[z-i], hi = e[z+i+1]
# sensitivity: +-1 count in a tail bin
for k in (5, 100, 200):
    hh = h.copy(); hh[k] += 1
    r2 = q(c.get_entropy_threshold, (hh, e, mn, mx, T), 128); print(f"  +1 count in bin {k}: thr {r2[1]!r} (changed: {r2[1] != r[1]})")
print("ORT rel_entr quirk: entropy(p=[1,0,1], q=[1,1,1]) =", ort_entropy(np.array([1., 0., 1.]), np.array([1., 1., 1.])), "(scipy gives finite)")
print("smooth_distribution(all zeros) ->", smooth_distribution(np.zeros(4, np.int64)))
try: smooth_distribution(np.array([1] + [0] * 10000))
except AssertionError as ex: print("smooth_distribution 1 nonzero, 10000 zeros -> AssertionError", str(ex)[:60])
# percentile asym + sym
for sym in (False, True):
    c = HistogramCollector("percentile", sym, 2048, 128, 99.9, "same"); q(c.collect, {"t": [x]})
    r = q(c.compute_percentile)["t"]; print(f"percentile sym={sym}: ({r[0]!r}, {r[1]!r})  extra items {len(r) - 2}")
# distribution
c = HistogramCollector("distribution", False, 512, 128, 99.9, "same"); q(c.collect, {"t": [x]})
td = q(c.compute_distribution)["t"]; print("distribution: avg", repr(td.avg), "std", repr(td.std), "lowest", repr(td.lowest), "highest", repr(td.highest))
c = HistogramCollector("distribution", False, 128, 128, 99.9, "same"); q(c.collect, {"t": [x]})
try: q(c.compute_distribution)
except ValueError as ex: print("distribution num_bins=128 ->", ex)
# refusals on bad data
for name, arr in (("nan", np.array([1, np.nan, -2], np.float32)), ("inf", np.array([1, np.inf], np.float32)), ("empty", np.zeros(0, np.float32)), ("zeros", np.zeros(5, np.float32)), ("f64", np.ones(3))):
    for m, s in (("entropy", False), ("percentile", True)):
        c = HistogramCollector(m, s, 16, 8, 99.9, "same")
        try:
            q(c.collect, {"t": [arr]}); hd = c.histogram_dict["t"]; print(f"  {name:5s} {m:10s}: ok bins={hd[0].size} sum={hd[0].sum()} edges[0,-1]=({hd[1][0]!r},{hd[1][-1]!r}) edge dtype {hd[1].dtype}")
        except Exception as ex: print(f"  {name:5s} {m:10s}: {type(ex).__name__}: {str(ex)[:80]}")
