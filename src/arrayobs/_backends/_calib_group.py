"""The calibrators' ``process_group=``: every rank ends each collect with the
state one process gets from one reference call on the ranks' batches
concatenated in rank order (``np.concatenate``, axis 0).

Each rank's histogram grid (bin count, range, edges, min and max, refusals)
depends on its batch only through a few values per row: the smallest and
largest non-NaN value, the non-NaN values of smallest magnitude (any, and
nonzero in float32), and a NaN if there is one. A *stand-in* of those five
values per row (none for an empty batch) is all-gathered, and the unchanged
single-process step runs on the stand-ins of all ranks (``A``): every rank
gets the same grid and the same refusal, so a refused call changes no rank.
The counts: a step on the stand-ins followed by the rank's own rows (``B``)
has the same grid, so ``B - A`` is the rank's batch binned on it; those are
summed over the group (int64, or float64 for float32 counts: exact in any
order), and the stand-ins' own counts (a step from zero counts, ``Z``) are
taken out: ``A - Z + sum(B - A)``.

The one exception is a row holding both signed zeros (on one rank or across
ranks): which zero a minimum keeps depends on the order of the values, so
there the ranks' rows are gathered and the step runs on their concatenation.
ORT's MinMaxCalibrater needs only each batch's (min, max) pair, ModelOpt's
MaxCalibrator each batch's reduced max and min: both are gathered, and the
step runs on them.

Refusals: each rank builds its part inside :func:`gather`; a rank that fails
(a wrong dtype or shape) still joins the collective, raises its own error,
and the other ranks raise RuntimeError naming it; no state changes anywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist


def gather(group: Any, make: Callable[[], Any]) -> list[Any]:
    """Every rank's ``make()``, in rank order; raises on every rank if any failed."""
    try:
        mine: tuple[str, Any] = ("ok", make())
    except Exception as exc:  # re-raised below, after the collective
        own: Exception | None = exc
        mine = ("error", (type(exc).__name__, str(exc)))
    else:
        own = None
    parts: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(parts, mine, group=group)
    if own is not None:
        raise own
    for rank, (status, value) in enumerate(parts):
        if status == "error":
            msg = (
                f"rank {rank} of the process group refused its batch ({value[0]}: {value[1]}); "
                "no rank's state changed"
            )
            raise RuntimeError(msg)
    return [value for _, value in parts]


def _smallest(rows: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Per row, the value of smallest magnitude among ``where`` (NaN if none)."""
    mag = torch.where(where, rows.abs(), torch.full_like(rows, float("inf")))
    picked = rows.gather(1, mag.argmin(1, keepdim=True))[:, 0]
    return torch.where(where.any(1), picked, torch.full_like(picked, float("nan")))


def stand_in(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Host (C, 5) stand-in of (C, M) ``rows`` ((C, 0) when M is 0), and
    per row whether it holds -0.0 and +0.0 (C, 2)."""
    zero = rows == 0
    signs = torch.stack(
        [(zero & torch.signbit(rows)).any(1), (zero & ~torch.signbit(rows)).any(1)], 1
    )
    if rows.shape[1] == 0:
        return rows.detach().cpu(), signs.cpu()
    nan = torch.isnan(rows)
    good = ~nan
    inf = torch.full_like(rows, float("inf"))
    lo = torch.where(good, rows, inf).amin(1)
    hi = torch.where(good, rows, -inf).amax(1)
    none = ~good.any(1)
    nan_row = torch.full_like(lo, float("nan"))
    lo, hi = torch.where(none, nan_row, lo), torch.where(none, nan_row, hi)
    small = _smallest(rows, good)
    nonzero = _smallest(rows, good & (rows.to(torch.float32) != 0))
    nonzero = torch.where(torch.isnan(nonzero), lo, nonzero)
    flag = torch.where(nan.any(1), nan_row, lo)
    return torch.stack([lo, hi, small, nonzero, flag], 1).detach().cpu(), signs.cpu()


def histogram(
    group: Any,
    local: Callable[[], torch.Tensor],
    advance: Callable[[Any, torch.Tensor], Any],
    state: Any,
) -> Any:
    """The new histogram state of one group-wide collect.

    ``local()``: this rank's (C, M) rows, validated (may raise);
    ``advance(state, rows)``: the single-process step on (C, M) rows from
    ``state`` (None before the first collect), raising the reference's
    refusals and re-padding past the capacity.
    """
    box: list[torch.Tensor] = []

    def part() -> tuple[Any, ...]:
        rows = local()
        if not isinstance(rows, torch.Tensor):
            msg = f"process_group needs torch tensors, got {type(rows).__name__}"
            raise TypeError(msg)
        box.append(rows)
        values, signs = stand_in(rows)
        return values, signs, tuple(rows.shape[:1]), str(rows.dtype)

    parts = gather(group, part)
    rows = box[0]
    layouts = {(p[2], p[3]) for p in parts}
    if len(layouts) > 1:
        msg = f"the ranks' batches disagree in channels or dtype: {sorted(layouts)}"
        raise ValueError(msg)
    signs = torch.stack([p[1] for p in parts]).any(0)
    device = rows.device
    if bool(signs.all(1).any()):
        # a row with both signed zeros: the step on the concatenated rows themselves
        whole = gather(group, lambda: rows.detach().cpu())
        return advance(state, torch.cat(whole, 1).to(device))
    values = torch.cat([p[0] for p in parts], 1).to(device)
    fixed = advance(state, values)
    own = advance(state, torch.cat([values, rows], 1))
    base = advance(None if state is None else _zeroed(state), values)
    counts = fixed.counts
    wide = torch.int64 if counts.dtype == torch.int64 else torch.float64
    summed = (own.counts - counts).to(wide)
    dist.all_reduce(summed, op=dist.ReduceOp.SUM, group=group)
    total = (counts - base.counts).to(wide) + summed
    return fixed._replace(counts=total.to(counts.dtype))


def _zeroed(state: Any) -> Any:
    return state._replace(counts=torch.zeros_like(state.counts))


def minmax_batches(group: Any, batches: list[Any], pairs: Callable[[Any], Any]) -> list[Any]:
    """ORT's MinMaxCalibrater: every rank's batches, in rank order, each as the
    stand-in ``pairs(batch)`` gives (its min and max, in the batch's layout)."""
    device = batches[0].device if batches else None
    parts = gather(group, lambda: [pairs(b).detach().cpu() for b in batches])
    target = device if device is not None else torch.device("cpu")
    return [b.to(target) for rank in parts for b in rank]


def max_parts(group: Any, local: Callable[[], Any]) -> list[Any]:
    """ModelOpt's MaxCalibrator: the ranks' stand-ins (``local()``: this rank's
    reduced max and min stacked along dim 0, or None for an empty tensor), on
    the host, in rank order, the empty ones left out."""
    parts = gather(group, lambda: None if (v := local()) is None else v.detach().cpu())
    return [p for p in parts if p is not None]
