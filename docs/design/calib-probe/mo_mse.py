# ModelOpt histogram 'mse' passes num_bits into fake_tensor_quant's `bias` slot; MseCalibrator; MaxCalibrator.
# run: /work/venv-calib/bin/python mo_mse.py
import warnings; warnings.filterwarnings("ignore")
import numpy as np, torch
from modelopt.torch.quantization.tensor_quant import fake_tensor_quant, _tensor_quant
from modelopt.torch.quantization.calib import HistogramCalibrator, MaxCalibrator, MseCalibrator
from modelopt.torch.quantization.calib.histogram import _compute_amax_mse
c = torch.linspace(0, 4, 9); a = torch.tensor(2.0)
print("fake_tensor_quant(c, amax, 8, False):", fake_tensor_quant(c, a, 8, False).tolist())
print("intended _tensor_quant(c, amax, 8):   ", _tensor_quant(c, a, 8, False).tolist())
s = torch.tensor(-0.5) / a; print("model  -0.5/(-0.5/amax):", float(torch.tensor(-0.5) / s))
torch.manual_seed(0); x = torch.randn(20000)
h = HistogramCalibrator(num_bins=512, torch_hist=True); h.collect(x)
hist = h._calib_hist.int().numpy(); edges = h._calib_bin_edges.numpy()
am = _compute_amax_mse(hist, edges, 8, False, 1, 128)
ctr = (torch.from_numpy(edges[1:]) + torch.from_numpy(edges[:-1])) / 2
print("histogram mse amax", float(am), "== centers[start_bin=128]:", float(am) == float(ctr[128]), "| weighted mean of centers:", float((ctr * torch.from_numpy(hist).float()).sum() / hist.sum()))
# MaxCalibrator
m = MaxCalibrator(axis=0); m.collect(torch.tensor([[1., -3.], [2., 0.5]])); print("Max axis=0 (2x2):", m.compute_amax().tolist(), m.compute_amax().shape)
m = MaxCalibrator(axis=0); m.collect(torch.tensor([1., -3., 2.])); print("Max axis=0 on 1-D (reduce dims []):", m.compute_amax(), m.compute_amax().shape)
m = MaxCalibrator(); m.collect(torch.tensor([1., -3.], dtype=torch.float16)); print("Max per-tensor f16 dtype kept:", m.compute_amax(), m.compute_amax().dtype)
for bad in (torch.tensor([1., float('nan')]), torch.tensor([1., float('inf')]), torch.zeros(0)):
    try: MaxCalibrator().collect(bad); print("ok?")
    except Exception as ex: print("Max on", bad.tolist(), "->", type(ex).__name__, str(ex)[:70])
m = MaxCalibrator(axis=0); m.collect(torch.ones(2, 3))
try: m.collect(torch.ones(3, 3))
except Exception as ex: print("Max shape change ->", type(ex).__name__, ex)
# MseCalibrator
print("MseCalibrator steps:", MseCalibrator(amax=torch.tensor(1.0))._num_steps, "(3.75/0.1 =", (4.0 - 0.25) / 0.1, ")")
qf = lambda x, amax: _tensor_quant(x, amax, 8, False)
mc = MseCalibrator(amax=x.abs().max(), quant_func=qf); mc.collect(x); mc.collect(2 * x[:100])
print("MseCalibrator per-tensor amax:", float(mc.compute_amax()), "initial", float(x.abs().max()))
xc = torch.randn(4, 64); init = xc.abs().amax(dim=1, keepdim=True)
mc = MseCalibrator(amax=init, axis=0, quant_func=qf); mc.collect(xc); print("MseCalibrator axis=0:", mc.compute_amax().flatten().tolist())
try: MseCalibrator(amax=torch.tensor(1.0)).collect(x)
except Exception as ex: print("MseCalibrator without quant_func ->", type(ex).__name__, ex)
