# Reference timings: collection at 1e7 float32, search at 2048 bins. Median of R runs; 1 torch thread.
# run: nice /work/venv-calib/bin/python timing.py
import io, contextlib, time, statistics, warnings, numpy as np, torch
warnings.filterwarnings("ignore"); torch.set_num_threads(1)
from onnxruntime.quantization.calibrate import HistogramCollector
from modelopt.torch.quantization.calib import HistogramCalibrator
def q(f, *a):
    with contextlib.redirect_stdout(io.StringIO()): return f(*a)
def med(fn, r):
    ts = []
    for _ in range(r):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts
rng = np.random.default_rng(0)
x = rng.standard_normal(10_000_000).astype(np.float32); x2 = 1.5 * x; xt = torch.from_numpy(x); xt2 = torch.from_numpy(x2)
rows = []
def ort_first(method, sym, nb):
    c = HistogramCollector(method, sym, nb, 128, 99.999, "same"); q(c.collect, {"t": [x]}); return c
def ort_grow(method, sym, nb):
    c = ort_first(method, sym, nb); t = time.perf_counter(); q(c.collect, {"t": [x2]}); return time.perf_counter() - t
rows.append(("ORT collect_value 1e7 f32, first batch (2048 bins)", *med(lambda: ort_first("entropy", False, 2048), 3)))
rows.append(("ORT collect_absolute_value 1e7 (percentile sym, 2048)", *med(lambda: ort_first("percentile", True, 2048), 3)))
g = [ort_grow("entropy", False, 2048) for _ in range(3)]; rows.append(("ORT collect_value 1e7, growing 2nd batch", statistics.median(g), g))
g = [ort_grow("percentile", True, 2048) for _ in range(3)]; rows.append(("ORT collect_absolute_value 1e7, growing 2nd batch (searchsorted path)", statistics.median(g), g))
def mo(th):
    c = HistogramCalibrator(num_bins=2048, torch_hist=th); c.collect(xt); return c
def mo_grow(th):
    c = mo(th); t = time.perf_counter(); c.collect(xt2); return time.perf_counter() - t
rows.append(("ModelOpt collect torch_hist=True 1e7 (1 thread)", *med(lambda: mo(True), 3)))
rows.append(("ModelOpt collect torch_hist=False 1e7", *med(lambda: mo(False), 3)))
g = [mo_grow(True) for _ in range(3)]; rows.append(("ModelOpt torch_hist=True growing 2nd batch", statistics.median(g), g))
g = [mo_grow(False) for _ in range(3)]; rows.append(("ModelOpt torch_hist=False growing 2nd batch", statistics.median(g), g))
# searches at 2048 bins
c = ort_first("entropy", False, 2048); hd = c.histogram_dict["t"]
rows.append(("ORT entropy search 2048 bins, 128 quantized", *med(lambda: q(c.get_entropy_threshold, hd, 128), 2)))
cp = ort_first("percentile", True, 2048); rows.append(("ORT percentile search 2048", *med(lambda: q(cp.compute_percentile), 3)))
cd = ort_first("distribution", False, 2048); rows.append(("ORT distribution 2048", *med(lambda: q(cd.compute_distribution), 3)))
for th in (True, False):
    m = mo(th)
    rows.append((f"ModelOpt entropy search 2048 (torch_hist={th}), start_bin 128 stride 1", *med(lambda: m.compute_amax("entropy"), 2)))
    rows.append((f"ModelOpt mse search 2048 (torch_hist={th})", *med(lambda: m.compute_amax("mse"), 3)))
    rows.append((f"ModelOpt percentile search 2048 (torch_hist={th})", *med(lambda: m.compute_amax("percentile", percentile=99.99), 3)))
for name, m, ts in rows: print(f"{name:75s} median {m*1e3:9.1f} ms   runs {[round(t*1e3,1) for t in ts]}")
