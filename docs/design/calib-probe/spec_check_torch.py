# ModelOpt torch_hist=True histograms and the 'mse' search re-derived from the notes' rules (NumPy only),
# compared with the live reference; plus NumPy's nanmean reduction order for ORT moving-average MinMax.
# run: nice /work/venv-calib/bin/python spec_check_torch.py
import warnings, math, numpy as np, torch
warnings.filterwarnings("ignore"); torch.set_num_threads(1)
from modelopt.torch.quantization.calib import HistogramCalibrator
from modelopt.torch.quantization.calib.histogram import _compute_amax_mse
f32 = np.float32; V = 8  # AVX2 / DEFAULT vector width (notes 1.6)
def histc(x, n, hi):                                  # notes 1.4 with lo = 0, float32 counts
    if hi == 0: lo_, hi_ = f32(-1), f32(1)
    else: lo_, hi_ = f32(0), f32(hi)
    x = x[(x >= lo_) & (x <= hi_)]
    pos = np.trunc(((x - lo_) * f32(n)).astype(f32) / f32(hi_ - lo_)).astype(np.int64); pos[pos == n] = n - 1
    return np.bincount(pos, minlength=n).astype(f32)
def t_linspace(m, n):                                 # notes 1.5: torch.linspace(0, m, n+1), float32
    st = f32(f32(m) / f32(n)); i = np.arange(n + 1); k = n - i
    return np.where(i < (n + 1) // 2, (st * i.astype(f32)).astype(f32), (np.float64(m) - np.float64(st) * k).astype(f32))
def t_arange(end, w):                                 # notes 1.6: torch.arange(0, end, w), float32
    L = math.ceil(float(end) / float(w)); i = np.arange(L); W = float(w); chunk = (L // (2 * V)) * (2 * V)
    vec = ((np.float64((i // V) * V) * W).astype(f32).astype(np.float64) + (i % V) * W).astype(f32)
    return np.where(i < chunk, vec, (i * W).astype(f32))
def mo_torch(batches, n0):
    h = e = None; n = n0
    for x in batches:
        a = np.abs(x) if x.min() < 0 else x; m = a.max()
        if h is None: h = histc(a, n, m); e = t_linspace(m, n); continue
        if m > e[-1]:
            w = f32(e[1] - e[0]); n = int(math.ceil(f32(m / w))); e = t_arange(f32(m + w), w)
        hn = histc(a, n, e[-1]); hn[:h.size] += h; h = hn
    return h, e, n
rng = np.random.default_rng(11); ok = 0; N = 40
for t in range(N):
    bs = [(rng.standard_normal(int(rng.integers(1, 4000))) * rng.uniform(0.01, 5)).astype(f32) for _ in range(int(rng.integers(1, 6)))]
    ref = HistogramCalibrator(num_bins=128, torch_hist=True)
    for b in bs: ref.collect(torch.from_numpy(b))
    h, e, n = mo_torch(bs, 128)
    ok += np.array_equal(ref._calib_hist.numpy(), h) and np.array_equal(ref._calib_bin_edges.numpy(), e) and ref._num_bins == n
print(f"ModelOpt torch_hist=True histogram+edges+num_bins from the notes' rules: {ok}/{N}")
# mse closed form (notes 4.5), sum via torch to isolate the q formula
ok = 0
for t in range(10):
    x = torch.from_numpy((rng.standard_normal(20000) * rng.uniform(0.1, 20)).astype(f32))
    c = HistogramCalibrator(num_bins=512, torch_hist=True); c.collect(x)
    hist = c._calib_hist.int().numpy(); edges = c._calib_bin_edges.numpy()
    ref = _compute_amax_mse(hist, edges, 8, False, 1, 128)
    cnt = torch.from_numpy(hist).float(); e = torch.from_numpy(edges).float(); ctr = (e[1:] + e[:-1]) / 2
    mses = []
    for i in range(128, len(ctr)):
        a = ctr[i]; scale = torch.tensor(-0.5) / a
        q = (torch.tensor(-0.5) / scale + 8) if a > 2 ** -24 else torch.tensor(7.5)
        mses.append(float((((q - ctr) ** 2) * cnt).sum() / len(ctr)))
    mine = ctr[128 + int(np.argmin(np.array(mses, dtype=f32)))]
    ok += float(mine) == float(ref)
print(f"ModelOpt histogram 'mse' from the closed form q = f32(-0.5/f32(-0.5/a)) + 8: {ok}/10 equal amax")
# nanmean order, (B,1) and (B,C) float32
v = rng.standard_normal((300, 1)).astype(f32) * f32(1000)
pair = f32(np.sum(v[:, 0]) / f32(300)); seq = f32(0)
for r in v[:, 0]: seq = f32(seq + r)
print("nanmean (B,1): == pairwise/B", np.nanmean(v, axis=0)[0] == pair, "; == sequential/B", np.nanmean(v, axis=0)[0] == f32(seq / f32(300)))
w = rng.standard_normal((300, 3)).astype(f32) * f32(1000); seq = np.zeros(3, f32)
for r in w: seq = (seq + r).astype(f32)
print("nanmean (B,3): == sequential/B", np.array_equal(np.nanmean(w, axis=0), (seq / f32(300)).astype(f32)))
