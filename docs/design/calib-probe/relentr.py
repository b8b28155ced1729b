# Which formula does scipy.special.rel_entr (SciPy 1.17.1) use?  run: /work/venv-calib/bin/python relentr.py
import math, sys, numpy as np, scipy, scipy.special as sp
rng = np.random.default_rng(0); p = rng.random(20000) + 1e-3; q = rng.random(20000) + 1e-3
p[:4] = [1e-300, 1e300, 0.0, 1.0]; q[:4] = [1e300, 1e-300, 1.0, 1.0]
ref = sp.rel_entr(p, q)
def xsf(x, y):
    if x <= 0 or y <= 0: return 0.0 if (x == 0 and y >= 0) else math.inf
    r = x / y
    if 0.5 < r < 2: return x * math.log1p((x - y) / y)
    if sys.float_info.min < r < math.inf: return x * math.log(r)
    return x * (math.log(x) - math.log(y))
hyps = {"x*log(x/y)": lambda x, y: x * math.log(x / y) if x > 0 and y > 0 and x / y > 0 else (0.0 if x == 0 else math.inf),
        "xsf: log1p((x-y)/y) if .5<x/y<2, x*log(x/y), else x*(log x-log y)": xsf}
print("scipy", scipy.__version__, "(first 4 pairs are extreme; x*log(x/y) underflows on pair 0)")
for k, f in hyps.items():
    v = np.array([f(a, b) for a, b in zip(p, q)]); print(f"{k:70s} bitwise mismatches {int((v != ref).sum())} / {p.size}")
