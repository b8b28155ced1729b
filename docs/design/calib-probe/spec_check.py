# Re-derive ORT's and ModelOpt's (numpy path) histograms from the written spec, compare to the live references.
# run: /work/venv-calib/bin/python spec_check.py
import io, contextlib, warnings, numpy as np, torch
warnings.filterwarnings("ignore")
from onnxruntime.quantization.calibrate import HistogramCollector
from modelopt.torch.quantization.calib import HistogramCalibrator
f32 = np.float32
def edges_uniform(lo, hi, n):                       # np.linspace(lo, hi, n+1) in f32
    step = f32(f32(hi - lo) / f32(n)); e = (np.arange(n + 1, dtype=f32) * step + lo).astype(f32); e[-1] = hi; return e
def hist_uniform(x, lo, hi, n):                     # np.histogram(x, n, range=(lo, hi)) for f32 x, f32 lo/hi
    if lo == hi: lo, hi = f32(lo - f32(0.5)), f32(hi + f32(0.5))
    e = edges_uniform(lo, hi, n); x = x[(x >= lo) & (x <= hi)]
    i = (f32(f32(x - lo) / f32(hi - lo)) * f32(n)).astype(np.int64); i[i == n] -= 1
    i[x < e[i]] -= 1; inc = (x >= e[i + 1]) & (i != n - 1); i[inc] += 1
    return np.bincount(i, minlength=n), e
def hist_edges(x, e):                               # np.histogram(x, bins=e): [e_i, e_i+1), last closed, compare in e's dtype
    x = x.astype(e.dtype); c = np.searchsorted(np.sort(x), e, "left"); c[-1] = np.searchsorted(np.sort(x), e[-1], "right"); return np.diff(c)
def ort_value(batches, n0):
    st = None
    for x in batches:
        mn, mx = np.nanmin(x), np.nanmax(x); T = f32(max(abs(mn), abs(mx)))
        if st is None: h, e = hist_uniform(x, -T, T, n0); st = [h, e, T]; continue
        h0, e0, T0 = st
        if T <= T0: st = [hist_uniform(x, -T0, T0, h0.size)[0] + h0, e0, T0]
        elif T0 == 0: h, e = hist_uniform(x, -T, T, h0.size); st = [h + h0, e, T]
        else:
            s = f32(f32(2) * T0 / f32(h0.size)); k = int(f32(T - T0) // s + 1); T1 = f32(f32(k * s) + T0)
            h, e = hist_uniform(x, -T1, T1, h0.size + 2 * k); h[k:k + h0.size] += h0; st = [h, e, T1]
    return st
def np_arange_f32(s, stop, w):                      # np.arange(f32 s, f32 stop, f32 w) -> f64 values
    n = max(0, int(np.ceil(f32(f32(stop - s) / w)))); d = float(f32(s + w)) - float(s)
    return float(s) + np.arange(n) * d
def absgrow(batches, n0, cast_edges):              # ORT collect_absolute_value (cast_edges=True) / ModelOpt numpy path (False)
    h = e = None
    for x in batches:
        a = np.abs(x)
        if h is None:
            h, e = hist_uniform(a, a.min(), a.max(), n0); continue
        m = a.max()
        if m > e[-1]:
            w = e[1] - e[0]
            # the arange's arguments are f32 scalars while e is f32, f64 scalars once e became f64
            new = np_arange_f32(e[-1] + w, m + w, w) if e.dtype == f32 else np.arange(e[-1] + w, m + w, w)
            e = np.hstack((e, new))
        hn = hist_edges(a, e); hn[:h.size] += h; h = hn
        if cast_edges: e = e.astype(f32)
    return h, e
rng = np.random.default_rng(5); ok = {"ort_value": 0, "ort_abs": 0, "mo_numpy": 0}; N = 40
for t in range(N):
    bs = [(rng.standard_normal(int(rng.integers(1, 3000))) * rng.uniform(0.01, 5)).astype(f32) for _ in range(int(rng.integers(1, 5)))]
    if t % 5 == 0: bs[0][:3] = 0.0
    c = HistogramCollector("entropy", False, 128, 128, 99.9, "same")
    with contextlib.redirect_stdout(io.StringIO()):
        for b in bs: c.collect({"t": [b]})
    h, e, _, _, T = c.histogram_dict["t"]; m = ort_value(bs, 128)
    ok["ort_value"] += np.array_equal(h, m[0]) and np.array_equal(e, m[1]) and T == m[2]
    c = HistogramCollector("percentile", True, 128, 128, 99.9, "same")
    with contextlib.redirect_stdout(io.StringIO()):
        for b in bs: c.collect({"t": [b]})
    h, e = c.histogram_dict["t"][:2]; m = absgrow(bs, 128, True)
    ok["ort_abs"] += np.array_equal(h, m[0]) and np.array_equal(e, m[1]) and e.dtype == m[1].dtype
    mo = HistogramCalibrator(num_bins=128, torch_hist=False)
    for b in bs: mo.collect(torch.from_numpy(b))
    m = absgrow(bs, 128, False)
    ok["mo_numpy"] += np.array_equal(mo._calib_hist, m[0]) and np.array_equal(mo._calib_bin_edges, m[1]) and mo._calib_bin_edges.dtype == m[1].dtype
print(f"spec == reference (hist, edges, dtype) in cases of {N}:", ok)
