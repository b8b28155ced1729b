# Edge cases: histc float32 count saturation, ragged batches in one ORT collect, ModelOpt empty input.
# run: /work/venv-calib/bin/python edge_cases.py
import io, contextlib, warnings, numpy as np, torch
warnings.filterwarnings("ignore")
from onnxruntime.quantization.calibrate import HistogramCollector
from modelopt.torch.quantization.calib import HistogramCalibrator
z = torch.zeros(17_000_001)
for nt in (1, 2):
    torch.set_num_threads(nt); print(f"histc of 17,000,001 zeros, {nt} thread(s): bin0 =", int(torch.histc(z, bins=4, min=0, max=1)[0]))
torch.set_num_threads(1); del z
c = HistogramCollector("entropy", False, 8, 4, 99.9, "same")
try:
    with contextlib.redirect_stdout(io.StringIO()): c.collect({"t": [np.ones(3, np.float32), np.ones(4, np.float32)]})
    print("ragged batches in one ORT collect: ok")
except Exception as ex: print("ragged batches in one ORT collect ->", type(ex).__name__, str(ex)[:70])
for th in (True, False):
    try: HistogramCalibrator(num_bins=8, torch_hist=th).collect(torch.zeros(0)); print("empty ok")
    except Exception as ex: print(f"ModelOpt empty input torch_hist={th} ->", type(ex).__name__, str(ex)[:70])
# -0.0 only, no negatives: no abs; float64 input downcast
h = HistogramCalibrator(num_bins=4, torch_hist=False); h.collect(torch.tensor([-0.0, 1.0, 2.0])); print("-0.0 kept (no abs): first edge", h._calib_bin_edges[0], "hist", h._calib_hist)
h = HistogramCalibrator(num_bins=4, torch_hist=True); h.collect(torch.tensor([1.0, 2.0], dtype=torch.float64)); print("f64 input -> hist dtype", h._calib_hist.dtype, "edges", h._calib_bin_edges.dtype)
torch.set_default_dtype(torch.float64); h = HistogramCalibrator(num_bins=4, torch_hist=True); h.collect(torch.tensor([1.0, 2.0])); print("default dtype f64 -> edges", h._calib_bin_edges.dtype, "hist", h._calib_hist.dtype); torch.set_default_dtype(torch.float32)
# entropy on numpy path: compute twice gives different answers?
torch.manual_seed(1); x = torch.randn(5000) * torch.rand(5000) ** 3
h = HistogramCalibrator(num_bins=512, torch_hist=False); h.collect(x)
print("np-path entropy twice:", float(h.compute_amax("entropy")), float(h.compute_amax("entropy")), "| hist[0] now == hist[1]:", h._calib_hist[0] == h._calib_hist[1])
h2 = HistogramCalibrator(num_bins=512, torch_hist=False); h2.collect(x); p1 = float(h2.compute_amax("percentile", percentile=50)); h2.compute_amax("entropy"); print("percentile(50) before/after an entropy call:", p1, float(h2.compute_amax("percentile", percentile=50)))
# ORT collect_value with an all-NaN call
c = HistogramCollector("entropy", False, 8, 4, 99.9, "same")
try:
    with contextlib.redirect_stdout(io.StringIO()): c.collect({"t": [np.full(3, np.nan, np.float32)]})
    print("all-NaN ORT collect_value: ok", c.histogram_dict["t"][0])
except Exception as ex: print("all-NaN ORT collect_value ->", type(ex).__name__, str(ex)[:70])
# inf in a later call of the abs paths; ModelOpt histogram mse with unsigned=True
c = HistogramCollector("percentile", True, 8, 4, 99.9, "same")
with contextlib.redirect_stdout(io.StringIO()): c.collect({"t": [np.array([1, -2], np.float32)]})
try:
    with contextlib.redirect_stdout(io.StringIO()): c.collect({"t": [np.array([1, np.inf], np.float32)]})
    print("ORT abs later inf: ok")
except Exception as ex: print("ORT abs later call with inf ->", type(ex).__name__, str(ex)[:70])
h = HistogramCalibrator(num_bins=8, torch_hist=False); h.collect(torch.tensor([1.0, -2.0]))
try: h.collect(torch.tensor([1.0, float("inf")])); print("ModelOpt np later inf: ok")
except Exception as ex: print("ModelOpt numpy later call with inf ->", type(ex).__name__, str(ex)[:70])
from modelopt.torch.quantization.calib.histogram import _compute_amax_mse
h = HistogramCalibrator(num_bins=512, unsigned=True, torch_hist=True); h.collect(torch.rand(5000) * 3)
ctr = (h._calib_bin_edges[1:] + h._calib_bin_edges[:-1]) / 2
print("mse unsigned=True amax", float(h.compute_amax("mse")), "== centers[128]:", float(h.compute_amax("mse")) == float(ctr[128]))
