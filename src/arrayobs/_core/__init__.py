"""The floor of arrayobs: the generic math, which names no backend.

Everything above builds on this package and nothing here imports from above:
the backend modules (``arrayobs._backends``) implement faster versions of
these functions and are tested against them bit for bit; the public
functional API (``arrayobs.functional``) and the observer classes sit on top.
"""

from arrayobs._core._keys import INT32_MAX, INT32_MIN, order_keys, pack_minmax, unpack_minmax
from arrayobs._core._minmax import (
    MinMaxState,
    MovingAverage,
    Rule,
    RunningMinMax,
    aminmax,
    crossed,
    first_max,
    first_min,
    init_state,
    is_fresh,
    merge_minmax,
    minmax_combine,
    moving_average_combine,
    namespace,
    other_axes,
    quiet,
    require_observable,
    to_float32,
)
from arrayobs._core._qparams import QParams, calculate_qparams, widest_int, zero_point_dtype

__all__ = [
    "INT32_MAX",
    "INT32_MIN",
    "MinMaxState",
    "MovingAverage",
    "QParams",
    "Rule",
    "RunningMinMax",
    "aminmax",
    "calculate_qparams",
    "crossed",
    "first_max",
    "first_min",
    "init_state",
    "is_fresh",
    "merge_minmax",
    "minmax_combine",
    "moving_average_combine",
    "namespace",
    "order_keys",
    "other_axes",
    "pack_minmax",
    "quiet",
    "require_observable",
    "to_float32",
    "unpack_minmax",
    "widest_int",
    "zero_point_dtype",
]
