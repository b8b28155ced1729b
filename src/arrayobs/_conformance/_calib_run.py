"""Running a calibrators case through a library of the references' API shape (the live
references, or ``arrayobs.calib``), and reading its numbers on the host."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from arrayobs._conformance._calib_cases import CalibCase, Op
from arrayobs._conformance._calib_corpus import channel_slices, inputs, pieces
from arrayobs._conformance._calib_records import Outcome, Output, Refusal, Row, host

QTYPES = {"int8": (-128, 127), "uint8": (0, 255)}


@dataclasses.dataclass
class Api:
    """What a run needs from a library of the references' API shape (the references
    themselves, or arrayobs.calib): how to build each family's object, and the
    host-side readers of its state and results."""

    make: Callable[[CalibCase, int | None], Any]  # (case, channel_axis) -> the object
    to_input: Callable[[np.ndarray, list[np.ndarray]], Any]  # (batch, its pieces) -> an array
    state: Callable[[CalibCase, Any, int], list[Output]]  # (case, object, channel) -> outputs
    result: Callable[[CalibCase, Any, Op, int], list[Output]]  # -> outputs of a result op
    scale_zp: Callable[..., tuple[Any, Any]]  # compute_scale_zp(rmin, rmax, qmin, qmax, sym)
    channels_outside: bool  # True: one object per channel (the reference's definition)


def qrange(qtype: str, reduce_range: bool, symmetric: bool) -> tuple[np.ndarray, np.ndarray]:
    """ORT's ``get_qmin_qmax_for_qType`` for int8/uint8 (NumPy 0-d arrays of the qtype)."""
    lo, hi = QTYPES[qtype]
    if reduce_range:
        lo, hi = (-64, 64) if qtype == "int8" else (0, 127)
    elif symmetric and qtype == "int8":
        lo = -127
    dt = np.dtype(qtype)
    return np.array(lo, dtype=dt), np.array(hi, dtype=dt)


def _range_of(outputs: list[Output]) -> tuple[Any, Any]:
    found = dict(outputs)
    for lo, hi in (("lo", "hi"), ("lowest", "highest")):
        if lo in found:
            return found[lo], found[hi]
    msg = "no range to take qparams of"
    raise ValueError(msg)


def run_case(case: CalibCase, api: Api) -> Outcome:
    """Run ``case`` through ``api``: its rows up to the first refusal, and that refusal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints progress lines
            return _run(case, api)


def _run(case: CalibCase, api: Api) -> Outcome:
    rows: list[Row] = []
    hosts, parts = inputs(case), pieces(case)
    if case.family == "ort-scale-zp":
        for k, op in enumerate(case.ops):
            _, lo, hi, qtype, reduce_range, symmetric = op
            qmin, qmax = qrange(qtype, reduce_range, symmetric)
            rmin, rmax = np.array(lo, np.float32), np.array(hi, np.float32)
            try:
                zp, scale = api.scale_zp(rmin, rmax, qmin, qmax, symmetric)
            except Exception as exc:  # the reference's refusal, stored
                return Outcome(rows, Refusal.of(exc, k))
            rows.append(Row(k, 0, [("zero_point", zp), ("scale", scale)]))
        return Outcome(rows)
    split = case.channel_axis is not None and api.channels_outside
    n_channels = 1
    if case.channel_axis is not None:
        first = next(h for op in hosts for h in op)
        n_channels = first.shape[case.channel_axis]
    objects = []
    for c in range(n_channels if split else 1):
        try:
            objects.append(api.make(case, None if split else case.channel_axis))
        except Exception as exc:
            return Outcome(rows, Refusal.of(exc, -1, c))
    last: dict[int, list[Output]] = {}
    for k, op in enumerate(case.ops):
        kind = op[0]
        if kind == "qparams":
            _, qtype, reduce_range, symmetric = op
            qmin, qmax = qrange(qtype, reduce_range, symmetric)
            for c in range(n_channels):
                lo, hi = _range_of(last[c])
                try:
                    zp, scale = api.scale_zp(
                        np.asarray(lo, np.float32),
                        np.asarray(hi, np.float32),
                        qmin,
                        qmax,
                        symmetric,
                    )
                except Exception as exc:
                    return Outcome(rows, Refusal.of(exc, k, c))
                rows.append(Row(k, c, [("zero_point", zp), ("scale", scale)]))
            continue
        step: list[Row] = []
        for j, obj in enumerate(objects):
            try:
                if kind == "collect":
                    batches = [api.to_input(h, p) for h, p in zip(hosts[k], parts[k], strict=True)]
                    if split:
                        axis = case.channel_axis or 0
                        batches = [
                            api.to_input(s, [s])
                            for h in hosts[k]
                            for s in channel_slices(h, axis)[j : j + 1]
                        ]
                    if case.library == "ort":
                        obj.collect(batches)
                    else:
                        (x,) = batches
                        obj.collect(x)
                    outs = [api.state(case, obj, c) for c in _channels(split, j, n_channels)]
                elif kind == "reset":
                    obj.reset()
                    continue
                else:
                    outs = [api.result(case, obj, op, c) for c in _channels(split, j, n_channels)]
            except Exception as exc:  # the reference's refusal, stored
                return Outcome(rows, Refusal.of(exc, k, j))
            for c, o in zip(_channels(split, j, n_channels), outs, strict=True):
                step.append(Row(k, c, o))
                if kind == "result":
                    last[c] = o
        if kind == "collect" and case.family == "ort-minmax":
            for r in step:
                last[r.channel] = r.outputs
        rows.extend(step)
    return Outcome(rows)


def _channels(split: bool, j: int, n: int) -> range:
    """The channels one object's outputs cover: its own (one object per channel), or all."""
    return range(j, j + 1) if split else range(n)


def ort_state(case: CalibCase, obj: Any, channel: int) -> list[Output]:
    """The state outputs after a collect, from an object of the contract's shape (for a
    per-channel arrayobs object, ``histogram`` holds one tuple per channel)."""
    if case.family == "ort-histogram":
        hist = obj.histogram
        if case.channel_axis is not None and not isinstance(hist[0], np.ndarray):
            hist = hist[channel]
        names = ("hist", "hist_edges", "min", "max", "threshold")
        return list(zip(names, hist, strict=False))
    lowest, highest = obj.compute_data()
    return [("lowest", lowest), ("highest", highest)]


def ort_result(case: CalibCase, obj: Any, op: Op, channel: int) -> list[Output]:
    """A result op's outputs: ORT MinMax's range; HistogramCollector's thresholds
    (entropy, percentile: ``lo``, ``hi``) or TensorData fields (distribution)."""
    if case.family == "ort-minmax":
        return ort_state(case, obj, channel)
    res = obj.compute_collection_result()
    per_channel = case.channel_axis is not None
    if per_channel and isinstance(res, list):
        # arrayobs: one ORT result per channel (each channel has its own bin count).
        res = res[channel]
    if case.arguments["method"] == "distribution":
        fields = [
            ("avg", res.avg),
            ("std", res.std),
            ("lowest", res.lowest),
            ("highest", res.highest),
        ]
    else:
        fields = [("lo", res[0]), ("hi", res[1])]
    if per_channel and np.asarray(host(fields[0][1])).size > 1:
        return [(n, np.asarray(host(v)).reshape(-1)[channel]) for n, v in fields]
    return fields


def modelopt_state(case: CalibCase, obj: Any, channel: int) -> list[Output]:
    """After a collect: ``compute_amax()`` (Max, Mse), or the histogram calibrator's
    ``_calib_hist``, ``_calib_bin_edges``, ``_num_bins`` (arrayobs: its ``histogram``
    property, one tuple per channel with a ``channel_axis``)."""
    if case.family != "modelopt-histogram":
        return [("amax", obj.compute_amax())]
    if hasattr(obj, "_calib_hist"):
        hist, edges, bins = obj._calib_hist, obj._calib_bin_edges, obj._num_bins
    elif hasattr(obj, "histogram"):  # a stand-in: (hist, edges, num_bins), a list per channel
        state = obj.histogram
        if case.channel_axis is not None:
            state = state[channel]
        hist, edges, bins = state
    else:  # arrayobs: public properties, one array per channel with a ``channel_axis``
        hist, edges, bins = obj.calib_hist, obj.calib_bin_edges, obj._num_bins
        if case.channel_axis is not None and hist is not None:
            hist, edges = hist[channel], edges[channel]
        if case.arguments.get("torch_hist", True) and hist is not None:
            # The reference's torch path sets ``_num_bins`` to the grown bin count
            # (its histogram's length); its NumPy path keeps the constructor's.
            bins = len(hist)
    return [
        ("calib_hist", hist),
        ("calib_bin_edges", edges),
        ("num_bins", np.asarray(int(bins), np.int64)),
    ]


def modelopt_result(case: CalibCase, obj: Any, op: Op, channel: int) -> list[Output]:
    """``compute_amax(method, **kwargs)`` (one value per channel with a ``channel_axis``)."""
    _, method, kwargs = op
    amax = obj.compute_amax(method, **kwargs)
    if case.channel_axis is not None and amax is not None:
        a = host(amax)
        if a is not None and a.ndim > 0:
            amax = a.reshape(-1)[channel]
    return [("amax", amax)]


def read_state(case: CalibCase, obj: Any, channel: int) -> list[Output]:
    return (ort_state if case.library == "ort" else modelopt_state)(case, obj, channel)


def read_result(case: CalibCase, obj: Any, op: Op, channel: int) -> list[Output]:
    return (ort_result if case.library == "ort" else modelopt_result)(case, obj, op, channel)
