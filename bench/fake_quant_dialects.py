"""How often torch's two quantize dialects differ (README, "Quantize and fake-quantize").

ATen's fake-quantize kernels take ``1.0f / float32(scale)``; the pt2e
``quantized_decomposed`` ops take ``1.0 / scale`` as a Python double, rounded
to float32 by the multiplication. Run: ``python bench/fake_quant_dialects.py``.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import torch

N = 10**6


def main() -> None:
    warnings.simplefilter("ignore")
    importlib.import_module("torch.ao.quantization.fx._decomposed")
    ops = torch.ops.quantized_decomposed
    rng = np.random.default_rng(0)
    s = rng.uniform(0.01, 10, N) / 255
    s32 = s.astype(np.float32)
    same = np.float32(1) / s32 == (1.0 / s32.astype(np.float64)).astype(np.float32)
    print(f"float32 scales: reciprocals equal in {int(same.sum())} of {N}")
    inv_aten = np.float32(1) / s32
    inv_dec = (1.0 / s).astype(np.float32)
    print(f"Python-double scales: reciprocals differ in {int((inv_aten != inv_dec).sum())} of {N}")
    k = rng.integers(-128, 128, N)
    cases = {
        "normal inputs": (rng.standard_normal(N) * s * 60).astype(np.float32),
        "near-tie inputs": ((k + 0.5) * s).astype(np.float32),
    }
    for name, x in cases.items():
        qa, qd = np.rint(x * inv_aten), np.rint(x * inv_dec)
        differ = np.nonzero(qa != qd)[0]
        confirmed = 0
        for i in differ[:100]:
            t = torch.tensor([x[i]])
            a = torch.fake_quantize_per_tensor_affine(t, float(s[i]), 0, -(2**31), 2**31 - 1)
            d = ops.quantize_per_tensor(t, float(s[i]), 0, -(2**31), 2**31 - 1, torch.int32)
            want_a = float(np.float32(qa[i]) * s32[i])
            confirmed += int(a.item() == want_a and d.item() == qd[i])
        print(
            f"{name}: quantized values differ in {len(differ)} of {N}; "
            f"torch confirms both dialects on {confirmed} of {min(100, len(differ))} sampled"
        )


if __name__ == "__main__":
    main()
