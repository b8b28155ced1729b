"""The affine observers' update: a state of per-block (min, max) and a batch's.

A pure step (:func:`fold`), called by
:class:`arrayobs.affine.AffineQuantizedMinMaxObserver` under its lock.
"""

from __future__ import annotations

from types import ModuleType

from arrayobs._core._affine import backend_dtype, dtype_name, promote
from arrayobs._core._minmax import MinMaxState, first_max, first_min


def fold(state: MinMaxState, batch: MinMaxState, *, xp: ModuleType) -> MinMaxState:
    """torchao's ``torch.min``/``torch.max`` of the state and the batch, in
    their promoted dtype, copied back into the state's dtype (as torchao's
    ``min_val.copy_``)."""
    kind = backend_dtype(
        promote(dtype_name(state.min_val.dtype), dtype_name(batch.min_val.dtype)), xp
    )
    keep = state.min_val.dtype
    (a_min, a_max), (b_min, b_max) = (
        (xp.astype(v, kind) for v in state),
        (xp.astype(v, kind) for v in batch),
    )
    return MinMaxState(
        xp.astype(first_min(a_min, b_min, xp), keep),
        xp.astype(first_max(a_max, b_max, xp), keep),
    )
