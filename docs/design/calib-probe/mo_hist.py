# ModelOpt HistogramCalibrator probes: torch_hist True vs False, growth, edges, state mutation.
# run: /work/venv-calib/bin/python mo_hist.py
import warnings, numpy as np, torch
warnings.filterwarnings("ignore")
from modelopt.torch.quantization.calib import HistogramCalibrator
torch.manual_seed(0)
b1 = torch.randn(1000); b2 = 3 * torch.randn(1000)
for th in (True, False):
    c = HistogramCalibrator(num_bins=128, torch_hist=th)
    c.collect(b1)
    h, e = c._calib_hist, c._calib_bin_edges
    print(f"torch_hist={th} batch1: hist {type(h).__name__} {h.dtype} n={h.numel() if th else h.size}; edges {e.dtype} len {len(e)} first {float(e[0])!r} last {float(e[-1])!r} sum {float(h.sum())}")
    c.collect(b2)
    h2, e2 = c._calib_hist, c._calib_bin_edges
    print(f"   batch2: hist n={len(h2)} edges {e2.dtype} len {len(e2)} last {float(e2[-1])!r} sum {float(h2.sum())}  _num_bins={c._num_bins}")
    if th:
        w = e[1] - e[0]; nb = int((b2.abs().max() / w).ceil().item())
        print("   histc bins = ceil(xmax/width) =", nb, "; arange edges len-1 =", len(e2) - 1, "(mismatch!)" if nb != len(e2) - 1 else "")
        print("   first-batch edges == torch.linspace(0,xmax,129):", torch.equal(e, torch.linspace(0, b1.abs().max(), 129)))
    for m, kw in (("percentile", {"percentile": 99.9}), ("entropy", {}), ("mse", {})):
        before = np.array(c._calib_hist).copy() if not th else c._calib_hist.clone()
        a = c.compute_amax(m, **kw)
        after = c._calib_hist
        mutated = (not np.array_equal(before, after)) if not th else (not torch.equal(before, after))
        print(f"   {m:10s} amax {float(a)!r:24s} type {type(a).__name__} {a.dtype}  stored hist mutated: {mutated}")
# numpy path: same data, histogram counts differ from torch path?
c1 = HistogramCalibrator(num_bins=128, torch_hist=True); c1.collect(b1)
c2 = HistogramCalibrator(num_bins=128, torch_hist=False); c2.collect(b1)
print("same batch, torch vs numpy hist equal:", np.array_equal(c1._calib_hist.int().numpy(), c2._calib_hist),
      "| numpy first edge = min|x| =", float(c2._calib_bin_edges[0]), "; torch first edge 0")
# all-zero first batch in torch path
c = HistogramCalibrator(num_bins=8, torch_hist=True); c.collect(torch.zeros(10))
print("zeros batch: hist", c._calib_hist.tolist(), "edges", c._calib_bin_edges.tolist())
try:
    c.collect(torch.ones(10)); print("second batch ok", c._calib_hist)
except Exception as ex: print("second batch after zeros ->", type(ex).__name__, ex)
# NaN: torch.min(x)<0 is False with NaN -> no abs
c = HistogramCalibrator(num_bins=8, torch_hist=True)
try: c.collect(torch.tensor([-1.0, float("nan"), 2.0])); print("nan batch hist", c._calib_hist.tolist())
except Exception as ex: print("nan batch (torch_hist) ->", type(ex).__name__, ex)
c = HistogramCalibrator(num_bins=8, torch_hist=False)
try: c.collect(torch.tensor([-1.0, float("nan"), 2.0])); print("nan batch np hist", c._calib_hist.tolist())
except Exception as ex: print("nan batch (np) ->", type(ex).__name__, ex)
try: HistogramCalibrator(axis=0)
except Exception as ex: print("axis=0 ->", type(ex).__name__, ex)
# entropy with start_bin > bins
c = HistogramCalibrator(num_bins=64, torch_hist=False); c.collect(b1)
try: c.compute_amax("entropy")
except Exception as ex: print("entropy start_bin 128 > 64 bins ->", type(ex).__name__, ex)
# skip_zeros and empty
c = HistogramCalibrator(num_bins=8, torch_hist=False, skip_zeros=True); c.collect(torch.zeros(4))
print("skip_zeros all-zero np: hist", c._calib_hist.tolist(), "edges", c._calib_bin_edges.tolist())
