"""import arrayobs and observing NumPy arrays load no other array library."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import numpy as np
import arrayobs
from arrayobs import functional
obs = arrayobs.MovingAverageMinMaxObserver()
obs(np.linspace(-1, 1, 10, dtype=np.float32))
obs.calculate_qparams()
obs.load_state_dict(obs.state_dict())
repr(obs)
loaded = sorted(m for m in ("torch", "jax", "cupy", "dask", "array_api_strict") if m in sys.modules)
print(",".join(loaded))
"""


def test_numpy_use_imports_no_other_backend() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout.strip()}"
