# torch.histc / torch.linspace / torch.arange rules as ModelOpt's torch_hist=True path uses them.
# run: /work/venv-calib/bin/python torch_rules.py
import numpy as np, torch
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
f32 = np.float32
# 1) histc(x, bins, min=0, max=m): pos = trunc(f32(f32(x*bins)/m)), pos==bins -> bins-1, skip x<0, x>m, NaN
bad = 0
for t in range(200):
    nb = int(torch.randint(1, 3000, (1,), generator=g)); x = torch.rand(2000, generator=g) * float(torch.rand(1, generator=g) * 10)
    x[:5] = torch.tensor([0.0, x.max(), x.max() / 3, x.max() / 7, x.max() * 0.5])
    m = x.max(); ref = torch.histc(x, bins=nb, min=0, max=m).numpy()
    xn = x.numpy(); pos = np.trunc((xn * f32(nb)) / m.numpy()).astype(np.int64); pos[pos == nb] = nb - 1
    bad += not np.array_equal(np.bincount(pos, minlength=nb).astype(f32), ref)
print("histc rule  pos=trunc(f32(f32(x*nbins)/max)) mismatches over 200 random cases:", bad)
# numpy's rule differs: (x-first)/denom*n, then +-1 correction against edges
# 2) torch.linspace(0, m, n+1) float32: symmetric fill hypothesis
bad = 0
for t in range(200):
    n = int(torch.randint(1, 5000, (1,), generator=g)); m = torch.rand(1, generator=g)[0] * 100
    ref = torch.linspace(0, m, n + 1).numpy(); st = f32(m.numpy() - f32(0)) / f32(n)
    i = np.arange(n + 1); hyp = np.where(i < (n + 1) // 2, f32(0) + st * i.astype(f32), m.numpy() - st * (n - i).astype(f32)).astype(f32)
    bad += not np.array_equal(hyp, ref)
print("linspace, UNFUSED hypothesis (rejected; the fused rule is in torch_rules2.py) mismatches of 200:", bad)
# 3) growth: num_bins = int(ceil(f32(xmax/w))) vs len(torch.arange(0, f32(xmax+w), w)) - 1
mism = 0; ex = None; badv = {"f32(i*step in f64)": 0}
for t in range(3000):
    w = (torch.rand(1, generator=g)[0] * 0.05 + 1e-4).to(torch.float32)
    k = int(torch.randint(2, 400, (1,), generator=g)); xmax = (w * k) * (1 + (torch.rand(1, generator=g)[0] - 0.5) * 1e-6)
    nb = int((xmax / w).ceil().item()); ar = torch.arange(0, xmax + w, w)
    if nb != ar.numel() - 1:
        mism += 1; ex = ex or (float(xmax), float(w), nb, ar.numel() - 1)
    hyp = (np.arange(ar.numel()) * float(w)).astype(f32)
    badv["f32(i*step in f64)"] += not np.array_equal(hyp, ar.numpy())
print(f"growth: histc bins != len(arange edges)-1 in {mism} of 3000 near-multiple cases; example (xmax,w,bins,edges-1) = {ex}")
print("arange, naive f32(i*step) hypothesis (rejected; see torch_rules2.py) mismatches:", badv)
