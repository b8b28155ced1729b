# ORT percentile / distribution / compute_scale_zp and ModelOpt percentile re-derived from the notes,
# compared bitwise with the live references.  run: nice /work/venv-calib/bin/python spec_check_results.py
import io, contextlib, warnings, numpy as np, torch
warnings.filterwarnings("ignore")
from onnxruntime.quantization.calibrate import HistogramCollector
from onnxruntime.quantization.quant_utils import compute_scale_zp
from modelopt.torch.quantization.calib import HistogramCalibrator
f32 = np.float32
def quiet(f, *a):
    with contextlib.redirect_stdout(io.StringIO()): return f(*a)
rng = np.random.default_rng(7); ok = {"ort_pct": 0, "ort_dist": 0, "zp": 0, "mo_pct": 0}; N = 20
for t in range(N):
    x = (rng.standard_normal(5000) * rng.uniform(0.1, 4) + rng.uniform(-1, 1)).astype(f32)
    p = float(rng.choice([0, 50, 99.9, 99.999, 100]))
    for sym in (False, True):
        c = HistogramCollector("percentile", sym, 256, 128, p, "same"); quiet(c.collect, {"t": [x]})
        r = quiet(c.compute_percentile)["t"]; h, e, mn, mx = c.histogram_dict["t"][:4]
        cdf = np.cumsum(h / h.sum())
        if sym: i = np.searchsorted(cdf, p / 100.0); lo, hi = -e[i], e[i]
        else:
            cc = (100.0 - p) / 200.0; lo, hi = e[np.searchsorted(cdf, cc)], e[np.searchsorted(cdf, 1.0 - cc)]
        lo = mn if lo < mn else lo; hi = mx if hi > mx else hi
        ok["ort_pct"] += (r[0] == lo and r[1] == hi and np.asarray(r[0]).dtype == np.asarray(lo).dtype) / 2
    for sc in ("same", "p3"):
        c = HistogramCollector("distribution", False, 512, 128, 99.9, sc); quiet(c.collect, {"t": [x]})
        td = quiet(c.compute_distribution)["t"]; h, e = c.histogram_dict["t"][:2]
        v = ((e[:-1] + e[1:]) * f32(0.5)).astype(f32)
        if sc == "p3":
            with np.errstate(all="ignore"): fact = np.abs(v) / v
            fact[~np.isfinite(fact)] = 1; v = (np.abs(v) ** f32(1 / 3) * fact).astype(f32)
        avg = (h * v).sum() / h.sum(); std = ((h * v ** 2).sum() / h.sum() - avg ** 2) ** 0.5
        ok["ort_dist"] += (td.avg == f32(avg) and td.std == f32(std) and td.lowest == e.min() and td.highest == e.max()) / 2
    lo, hi = np.array(x.min(), f32), np.array(x.max(), f32)
    for qt, sym in (((np.array(-128, np.int8), np.array(127, np.int8)), False), ((np.array(0, np.uint8), np.array(255, np.uint8)), False), ((np.array(-127, np.int8), np.array(127, np.int8)), True)):
        zp, sc = compute_scale_zp(lo, hi, qt[0], qt[1], symmetric=sym)
        rmin, rmax = np.minimum(lo, f32(0)), np.maximum(hi, f32(0))
        if sym: a = np.maximum(np.abs(rmin), np.abs(rmax)); rmin, rmax = -a, a
        s = (np.float64(rmax) - np.float64(rmin)) / (np.float64(qt[1]) - np.float64(qt[0]))
        z = np.round((float(qt[0]) + float(qt[1])) / 2.0) if sym else np.round(float(qt[0]) - np.float64(rmin) / s)
        ok["zp"] += (int(zp) == int(z) and sc == f32(s) and sc.dtype == f32)
    m = HistogramCalibrator(num_bins=256, torch_hist=bool(t % 2)); m.collect(torch.from_numpy(x))
    pp = float(rng.choice([0, 50, 99.99, 100])); a = m.compute_amax("percentile", percentile=pp)
    h = m._calib_hist.int().numpy() if t % 2 else m._calib_hist; e = m._calib_bin_edges.numpy() if t % 2 else m._calib_bin_edges
    mine = torch.tensor(e[np.searchsorted(np.cumsum(h / h.sum()), pp / 100)].item())
    ok["mo_pct"] += bool(torch.equal(a, mine))
print(f"re-derived == reference over {N} random cases (zp: 3 quant types per case):", ok)
