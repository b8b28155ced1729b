# Feasibility: per-candidate-vectorized NumPy searches that reproduce ORT's and ModelOpt's entropy KL values
# bit for bit (recorded from the live references by wrapping their entropy functions). Small sizes only.
# run: nice /work/venv-calib/bin/python fast_search.py
import io, contextlib, time, warnings, math, numpy as np, torch
warnings.filterwarnings("ignore")
import onnxruntime.quantization.calibrate as ortc
from onnxruntime.quantization.quant_utils import smooth_distribution
import modelopt.torch.quantization.calib.histogram as moh
from modelopt.torch.quantization.calib import HistogramCalibrator
rec = []
_ort_entropy, _sp_entropy = ortc.entropy, moh.entropy
ortc.entropy = lambda p, q, *a, **k: rec.append(_ort_entropy(p, q, *a, **k)) or rec[-1]
moh.entropy = lambda p, q, *a, **k: rec.append(_sp_entropy(p, q, *a, **k)) or rec[-1]

def ort_kl(hist, nqb, dtype=np.float32):           # one KL value per candidate, same NumPy ops as the reference
    n = hist.size; z = n // 2; h = nqb // 2; out = []
    for i in range(h, z + 1):
        s, e = z - i, min(z + i + 1, n); sl = hist[s:e]; p = sl.copy()
        p[0] += hist[:s].sum(); p[-1] += hist[e:].sum()
        nz = (p != 0).astype(np.int64); m = sl.size // nqb
        qb = sl[:nqb * m].reshape(nqb, m).sum(1); qb[-1] += sl[nqb * m:].sum()
        norm = nz[:nqb * m].reshape(nqb, m).sum(1)
        vals = np.where(norm != 0, qb / np.where(norm == 0, 1, norm), 0).astype(np.int64)
        q = np.zeros(p.size, np.int64); q[:nqb * m] = np.repeat(vals, m)
        ps, qs = smooth_distribution(p), smooth_distribution(q)
        out.append(np.inf if ps is None or qs is None else np.array(_ort_entropy(ps, qs), dtype=dtype))
    return np.array(out, dtype=np.float64)

def rel_entr(x, y):                                  # SciPy 1.17.1 (xsf) rel_entr, vectorized; libm-equal logs checked in logs.py
    with np.errstate(all="ignore"):
        r = x / y; near = (0.5 < r) & (r < 2); mid = (np.finfo(float).tiny < r) & (r < np.inf)
        v = np.where(near, x * np.log1p((x - y) / y), np.where(mid, x * np.log(r), x * (np.log(x) - np.log(y))))
        v = np.where((x > 0) & (y > 0), v, np.where((x == 0) & (y >= 0), 0.0, np.inf))
        return np.where(np.isnan(x) | np.isnan(y), np.nan, v)

def mo_kl(hist, num_bits=8, unsigned=False, stride=1, start_bin=128):
    b = hist.copy(); b[0] = b[1]; total = np.sum(b); nb = 1 << (num_bits - 1 + int(unsigned)); out = []
    for i in range(start_bin, len(b) + 1, stride):
        dig = np.digitize(np.arange(i), np.linspace(0, i, num=nb + 1)) - 1; dig[b[:i] == 0] = -1; ok = dig != -1
        cnt = np.bincount(dig[ok], weights=b[:i][ok].astype(np.float64), minlength=nb)
        num = np.bincount(dig[ok], minlength=nb); dens = cnt / np.where(num == 0, 1, num)
        nd = np.where(ok, dens[np.where(ok, dig, 0)], 0.0)
        ref = np.array(b[:i]); tail = np.sum(b[i:]); ref[-1] += tail
        if round(np.sum(nd) + tail) != total or round(np.sum(ref)) != total: raise RuntimeError("Count mismatch!")
        pk = ref.astype(np.float64); qk = nd / np.sum(nd); pk = pk / np.sum(pk)
        out.append(np.sum(rel_entr(pk, qk)))
    return np.array(out)

if __name__ == "__main__":
    rng = np.random.default_rng(3); res = []
    for t in range(4):
        x = (rng.standard_normal(30000) * rng.uniform(0.1, 3) * rng.random(30000) ** t).astype(np.float32)
        c = ortc.HistogramCollector("entropy", False, 512, 128, 99.9, "same")
        with contextlib.redirect_stdout(io.StringIO()): c.collect({"t": [x]})
        rec.clear(); t0 = time.perf_counter(); ref_thr = c.get_entropy_threshold(c.histogram_dict["t"], 128); t1 = time.perf_counter()
        mine = ort_kl(c.histogram_dict["t"][0], 128); t2 = time.perf_counter()
        refv = np.array([np.float32(v) for v in rec], dtype=np.float64)
        res.append(("ORT 512 bins", np.array_equal(refv, mine[np.isfinite(mine)]) and len(refv) == np.isfinite(mine).sum(), t1 - t0, t2 - t1))
        for th in (True, False):
            m = HistogramCalibrator(num_bins=512, torch_hist=th); m.collect(torch.from_numpy(x))
            hist = m._calib_hist.int().numpy() if th else m._calib_hist.copy()
            rec.clear(); t0 = time.perf_counter(); m.compute_amax("entropy"); t1 = time.perf_counter(); mine = mo_kl(hist); t2 = time.perf_counter()
            res.append((f"ModelOpt 512 bins torch_hist={th}", np.array_equal(np.array(rec, dtype=np.float64), mine), t1 - t0, t2 - t1))
    for name, same, tr, tm in res: print(f"{name:32s} KL values bitwise equal: {same}   reference {tr*1e3:8.1f} ms   per-candidate numpy {tm*1e3:7.1f} ms")
