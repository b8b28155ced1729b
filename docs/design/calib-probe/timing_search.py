# Re-time the two slow searches at 2048 bins (3 runs each) + the per-candidate numpy re-implementations.
# run: nice /work/venv-calib/bin/python timing_search.py
import io, contextlib, time, statistics, warnings, numpy as np, torch
warnings.filterwarnings("ignore"); torch.set_num_threads(1)
import onnxruntime.quantization.calibrate as ortc
from modelopt.torch.quantization.calib import HistogramCalibrator
from fast_search import ort_kl, mo_kl
rng = np.random.default_rng(0); x = rng.standard_normal(1_000_000).astype(np.float32)
c = ortc.HistogramCollector("entropy", False, 2048, 128, 99.9, "same")
with contextlib.redirect_stdout(io.StringIO()): c.collect({"t": [x]})
m = HistogramCalibrator(num_bins=2048, torch_hist=True); m.collect(torch.from_numpy(x)); mh = m._calib_hist.int().numpy()
def t(f, r=3):
    ts = []
    for _ in range(r):
        a = time.perf_counter(); f(); ts.append(time.perf_counter() - a)
    return f"median {statistics.median(ts)*1e3:9.1f} ms  runs {[round(v*1e3) for v in ts]}"
with contextlib.redirect_stdout(io.StringIO()): r1 = t(lambda: c.get_entropy_threshold(c.histogram_dict["t"], 128))
print("ORT entropy search 2048/128         ", r1)
print("  per-candidate numpy (fast_search)  ", t(lambda: ort_kl(c.histogram_dict["t"][0], 128)))
print("ModelOpt entropy search 2048 (torch)", t(lambda: m.compute_amax("entropy")))
print("  per-candidate numpy (fast_search)  ", t(lambda: mo_kl(mh)))
