"""The objects whose pickles, written by arrayobs before the one-shell change
(commit 0f30e5b), ``tests/data/main_pickles.pkl`` holds; test_pickle_compat
loads those bytes and checks them against the same objects built now.

Regenerate only from that commit's code: ``PYTHONPATH=src python tests/data/main_pickles.py``.
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import numpy as np

import arrayobs as ao
from arrayobs.affine import (
    AffineQuantizedMinMaxObserver,
    AffineQuantizedMovingAverageMinMaxObserver,
    MappingType,
    PerGroup,
)

PATH = Path(__file__).with_suffix(".pkl")


def batches() -> list[np.ndarray]:
    rng = np.random.default_rng(23)
    return [rng.standard_normal((4, 8)).astype(np.float32) * s for s in (1.0, 3.0)]


# 0f30e5b's moving-average affine observer was torch.ao's float32 average per block, which
# is running_dtype="float32" since the default became torchao's pt2e observer.
_FLOAT32_AVERAGE = (
    {"running_dtype": "float32"}
    if "running_dtype" in inspect.signature(AffineQuantizedMovingAverageMinMaxObserver).parameters
    else {}
)


def objects() -> dict[str, Any]:
    """Each object as built and fed by the recipe (numpy; one never observed)."""
    made: dict[str, Any] = {
        "minmax_unbound": ao.MinMaxObserver(),
        "minmax": ao.MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric"),
        "moving": ao.MovingAverageMinMaxObserver(averaging_constant=0.25, xp=np),
        "per_channel": ao.PerChannelMinMaxObserver(ch_axis=1),
        "moving_per_channel": ao.MovingAveragePerChannelMinMaxObserver(ch_axis=0),
        "histogram": ao.HistogramObserver(bins=64),
        "fixed": ao.FixedQParamsObserver(scale=0.125, zero_point=3),
        "placeholder": ao.PlaceholderObserver(dtype="float16"),
        "recording": ao.RecordingObserver(),
        "noop": ao.NoopObserver(),
        "reuse": ao.ReuseInputObserver(),
        "fake_quantize": ao.FakeQuantize(),
        "fake_quantize_per_channel": ao.default_per_channel_weight_fake_quant(),
        "fixed_fake_quantize": ao.default_fixed_qparams_range_0to1_fake_quant(),
        "fused": ao.default_fused_act_fake_quant(),
        "fused_per_channel": ao.default_fused_per_channel_wt_fake_quant(),
        "affine": AffineQuantizedMinMaxObserver(MappingType.ASYMMETRIC, "uint8", PerGroup(4)),
        "affine_moving": AffineQuantizedMovingAverageMinMaxObserver(
            MappingType.SYMMETRIC, "int8", PerGroup(4), averaging_constant=0.5, **_FLOAT32_AVERAGE
        ),
    }
    made["fake_quantize"].disable_observer()
    made["fake_quantize"].enable_observer()
    for name, obj in made.items():
        if name == "minmax_unbound":
            continue
        for x in batches():
            obj(x)
    return made


def main() -> None:
    PATH.write_bytes(pickle.dumps({k: pickle.dumps(v) for k, v in objects().items()}))


if __name__ == "__main__":
    main()
