"""The calibrator classes' side of ``process_group=``: what each one hands to
:mod:`arrayobs._backends._calib_group` (imported only when a group is used).

Every function runs under the calibrator's lock and returns what the class
then stores; a refusal raises on every rank before anything is stored.

The order of the ranks' batches (the definition every rank reproduces):

- ORT ``HistogramCollector``: one ORT collect of every rank's arrays,
  flattened and concatenated in rank order (per channel, each channel's
  slices so concatenated);
- ModelOpt ``HistogramCalibrator``: one ``collect`` of the ranks' tensors
  concatenated in rank order (per tensor flattened; per channel, each
  channel's slices);
- ModelOpt ``MaxCalibrator``: one ``collect`` of ``np.concatenate`` of the
  ranks' tensors along axis 0 (which ``axis`` must not keep);
- ORT ``MinMaxCalibrater``: one ``collect_data`` call whose reader yields rank
  0's batches, then rank 1's, and so on.
"""

from __future__ import annotations

from typing import Any

from arrayobs._compat import namespace_of
from arrayobs._core import _calib_modelopt as mcore
from arrayobs._core import _calib_ort as ocore
from arrayobs._observers import _modelopt_core as api


def _grouped() -> Any:
    from arrayobs._backends import _calib_group

    return _calib_group


def _torch_only(x: Any) -> None:
    if not type(x).__module__.startswith("torch"):
        msg = f"process_group needs torch tensors, got {type(x).__name__}"
        raise TypeError(msg)


def _with_state(owner: Any, state: Any, step: Any) -> Any:
    """``step()`` run as if ``owner`` held ``state`` (its own is put back)."""
    saved = owner._state
    owner._state = state
    try:
        return step()
    finally:
        owner._state = saved


def histogram_calibrator(cal: Any, x: Any) -> tuple[Any, Any, Any]:
    """ModelOpt ``HistogramCalibrator.collect(x)`` over the group: (new state, xp, device)."""
    bound: list[tuple[Any, Any]] = []
    axis = cal._channel_axis

    def local() -> Any:
        _torch_only(x)
        xp, device = cal._bind(x)
        if axis is not None and not -x.ndim <= axis < x.ndim:
            msg = f"channel_axis {axis} is out of range for a {x.ndim}-d tensor"
            raise ValueError(msg)
        bound.append((xp, device))
        return api.rows(x, axis, xp=xp)

    def advance(state: Any, rows: Any) -> Any:
        xp, device = bound[0]
        if axis is None:
            like = rows
        else:
            # (C, M) rows in a layout whose ``channel_axis`` is the channel axis
            nd = max(x.ndim, 2)
            shaped = xp.reshape(rows, (rows.shape[0], *(1,) * (nd - 2), rows.shape[1]))
            like = xp.moveaxis(shaped, 0, axis % nd)
        return _with_state(cal, state, lambda: cal._collected(like, xp, device))

    new = _grouped().histogram(cal._group, local, advance, cal._state)
    return (new, *bound[0])


def max_calibrator(cal: Any, x: Any) -> tuple[Any, Any, Any]:
    """ModelOpt ``MaxCalibrator.collect(x)`` over the group: (new state, xp, device)."""
    bound: list[tuple[Any, Any]] = []

    def local() -> Any:
        _torch_only(x)
        xp, device = cal._bind(x)
        bound.append((xp, device))
        axes = mcore.reduce_axes(x.ndim, cal._axis)
        if axes and 0 not in axes:
            msg = (
                f"with a process_group the ranks' tensors are concatenated along axis 0, "
                f"which axis={cal._axis!r} keeps: their amax shapes would differ"
            )
            raise ValueError(msg)
        if x.numel() == 0:
            return None
        if not axes:
            return xp.stack([xp.max(x), xp.min(x)])
        return xp.concat(
            [xp.max(x, axis=axes, keepdims=True), xp.min(x, axis=axes, keepdims=True)], axis=0
        )

    parts = _grouped().max_parts(cal._group, local)
    xp, device = bound[0]
    if not parts:  # every rank's tensor is empty: the reference's refusal, on every rank
        return (cal._collected(x, xp, device), xp, device)
    stand_in = xp.asarray(xp.concat(parts, axis=0), device=device)
    return (cal._collected(stand_in, xp, device), xp, device)


def minmax_batches(cal: Any, batches: list[Any]) -> list[Any]:
    """ORT ``MinMaxCalibrater``: every rank's batches as (min, max) stand-ins, in
    rank order (the checks of ``_collect`` then run on them, on every rank)."""
    channel_axis = 1 if cal.per_channel else None

    def pair(b: Any) -> Any:
        _torch_only(b)
        xp = namespace_of(b)
        if channel_axis is not None and b.ndim < 2:
            msg = f"per_channel reduces all axes but 1: needs 2 or more dims, got {b.shape}"
            raise ValueError(msg)
        if b.numel() == 0:
            return xp.reshape(b, (0,) if channel_axis is None else (0, b.shape[1]))
        lo, hi = ocore.batch_extremes(b, channel_axis, xp=xp)
        return xp.stack([lo, hi]) if channel_axis is not None else xp.concat([lo, hi])

    return _grouped().minmax_batches(cal._group, batches, pair)  # type: ignore[no-any-return]
