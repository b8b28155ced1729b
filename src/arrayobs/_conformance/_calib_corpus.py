"""The calibrators section of the corpus: ONNX Runtime 1.31.1's and ModelOpt 0.47.0's
calibrators over call sequences, from seeds, and their stored reference numbers.

Regenerate the stored file (``reference-calib-ort-1.31.1-modelopt-0.47.0.npz``, next to
the other stored references) with the live references installed::

    PYTHONPATH=src python -m arrayobs._conformance._calib_reference

(about 90 s; ``--check`` regenerates in memory and compares with the stored file
instead of writing it). It needs onnxruntime 1.31.1, onnx, nvidia-modelopt 0.47.0 (with
requests and huggingface_hub, which its import needs) and torch 2.13.0.

A case builds one calibrator (``family``: ``ort-histogram`` is ORT's ``HistogramCollector``,
``ort-minmax`` its ``MinMaxCalibrater``, ``ort-scale-zp`` its ``compute_scale_zp``,
``modelopt-max``, ``modelopt-histogram``, ``modelopt-mse`` ModelOpt's ``MaxCalibrator``,
``HistogramCalibrator``, ``MseCalibrator``) with the reference's own constructor
``arguments`` and runs its ``ops`` in order:

- ``("collect", (batch, ...))``: one ORT ``collect``/``collect_data`` call on those batches
  (ModelOpt: one ``collect`` of the single batch). After it the state is recorded: ORT's
  histogram tuple, ORT MinMax's ``compute_data()`` range, ModelOpt's ``_calib_hist``,
  ``_calib_bin_edges`` and ``_num_bins``, or ModelOpt Max/Mse's ``compute_amax()``;
- ``("result", method, kwargs)``: ORT's ``compute_collection_result()`` (method None), or
  ModelOpt's ``compute_amax(method, **kwargs)``;
- ``("qparams", qtype, reduce_range, symmetric)``: ORT's ``compute_scale_zp`` on the range
  of the last result (``get_qmin_qmax_for_qType``'s ``qmin``/``qmax`` for that qtype);
- ``("scale_zp", rmin, rmax, qtype, reduce_range, symmetric)``: ``compute_scale_zp`` on
  float32 ``rmin``/``rmax`` (the ``ort-scale-zp`` family);
- ``("reset",)``: ``reset()``.

A batch is ``(kind, shape, scale)`` drawn from the case's seed (NumPy's legacy
``RandomState``), in the case's ``dtype`` (a batch may name its own as a 4th item), or
``("values", [...])`` given literally. ``ranks`` > 1 (merge cases): every batch is drawn
as ``ranks`` pieces and the reference is called on their concatenation along axis 0
(the definition of a data-parallel step). ``channel_axis`` (per-channel cases, arrayobs's
extension): the reference is one per-tensor calibrator per channel, fed
``np.take(batch, c, axis=channel_axis)`` flattened, one call per op; its rows are stored
per channel.

A refusal ends a case: it is stored as (exception type, message prefix, op index, channel)
in the case's header entry (op index -1: the constructor refused), with the rows of every
op before it.

Stored file (npz; format ``arrayobs-reference-calib``, version 1); one row per op that
yields numbers, and per channel, cases in corpus order:

- ``calib_case_offsets`` (int64): rows of case ``i``: ``[i]:[i + 1]``;
- ``calib_op`` (int32), ``calib_channel`` (int32): the row's op index and channel;
- ``calib_output_offsets`` (int64): outputs of row ``r``: ``[r]:[r + 1]``;
- ``calib_name`` (int8): each output's name, an index into ``NAMES``;
- ``calib_dtype`` (int8): its dtype, an index into ``DTYPES`` (``none``: the reference
  returned None; ``same``: bit for bit the previous row's output of that name, which keeps
  the unchanged edges of a growth chain out of the file);
- ``calib_shape_offsets`` (int64), ``calib_shapes`` (int64): its shape;
- ``calib_value_offsets`` (int64), ``calib_values`` (uint64): its values, flattened and
  encoded (float64 bits; float32 bits of float32 and float16 values; integers as int64),
  then stored as differences: ``e[0], e[1] - e[0], ...`` modulo 2**64 (a cumulative sum in
  uint64 gives them back; edges and counts then compress to a quarter);
- ``header``: UTF-8 JSON: format, versions (onnxruntime, modelopt, torch, numpy, scipy),
  the machine facts the references' bits depend on (torch's CPU capability and threads,
  NumPy's SIMD targets), every case (``cases``, refusals included) and ``NAMES``/``DTYPES``.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from arrayobs._conformance._calib_cases import (
    Batch,
    CalibCase,
    ort_histogram_cases,
    ort_minmax_cases,
    scale_zp_cases,
)
from arrayobs._conformance._calib_cases_modelopt import (
    modelopt_histogram_cases,
    modelopt_max_cases,
    modelopt_mse_cases,
)

CORPUS_VERSION = 1
FAMILIES = (
    "ort-histogram",
    "ort-minmax",
    "ort-scale-zp",
    "modelopt-max",
    "modelopt-histogram",
    "modelopt-mse",
)


def cases() -> list[CalibCase]:
    """The section, in a fixed order."""
    groups: list[tuple[str, list[tuple[Any, ...]]]] = [
        ("ort-histogram", ort_histogram_cases()),
        ("ort-minmax", ort_minmax_cases()),
        ("ort-scale-zp", scale_zp_cases()),
        ("modelopt-max", modelopt_max_cases()),
        ("modelopt-histogram", modelopt_histogram_cases()),
        ("modelopt-mse", modelopt_mse_cases()),
    ]
    out: list[CalibCase] = []
    for family, entries in groups:
        for entry in entries:
            name, arguments, ops = entry[:3]
            options = entry[3] if len(entry) > 3 else {}
            out.append(
                CalibCase(
                    id=len(out),
                    family=family,
                    name=name,
                    arguments=dict(arguments),
                    ops=tuple(ops),
                    seed=zlib.crc32(f"arrayobs-calib-{family}-{name}".encode()),
                    **options,
                )
            )
    return out


# -- the inputs --------------------------------------------------------------------------
def _draw(rng: np.random.RandomState, spec: Batch, dtype: str) -> np.ndarray:
    kind = spec[0]
    if kind == "values":
        return np.asarray(spec[1], dtype=dtype)
    shape, scale = tuple(spec[1]), float(spec[2])
    dtype = spec[3] if len(spec) > 3 else dtype
    n = math.prod(shape)
    if kind == "normal":
        v = rng.standard_normal(n) * scale
    elif kind == "pos":
        v = np.abs(rng.standard_normal(n)) * scale + 0.05 * scale
    elif kind == "relu":
        v = np.maximum(rng.standard_normal(n), 0.0) * scale
    elif kind == "heavy":
        v = np.clip(rng.standard_t(1.5, n), -1e3, 1e3) * scale
    elif kind == "zeros":
        v = np.zeros(n)
    elif kind == "negzeros":
        v = np.where(rng.uniform(size=n) < 0.5, -0.0, 0.0)
    elif kind == "const":
        v = np.full(n, scale)
    elif kind == "spikes":
        v = np.zeros(n)
        v[rng.randint(0, n, 3)] = np.asarray([1.0, -1.0, 0.5]) * scale
    elif kind == "nan":
        v = rng.standard_normal(n) * scale
        v[rng.randint(0, n, 2)] = np.nan
    elif kind == "allnan":
        v = np.full(n, np.nan)
    elif kind == "inf":
        v = rng.standard_normal(n) * scale
        v[rng.randint(0, n)] = np.inf
    else:
        msg = f"unknown batch kind {kind!r}"
        raise ValueError(msg)
    return v.reshape(shape).astype(dtype)


def pieces(case: CalibCase) -> list[list[list[np.ndarray]]]:
    """Per op, per batch: the ``case.ranks`` host pieces (C-contiguous, the case's dtype);
    ops without batches give an empty list."""
    rng = np.random.RandomState(case.seed)
    out: list[list[list[np.ndarray]]] = []
    for op in case.ops:
        if op[0] != "collect":
            out.append([])
            continue
        out.append([[_draw(rng, spec, case.dtype) for _ in range(case.ranks)] for spec in op[1]])
    return out


def inputs(case: CalibCase) -> list[list[np.ndarray]]:
    """Per op, the batches the reference gets: each the concatenation of its pieces."""
    return [[np.concatenate(p, axis=0) if len(p) > 1 else p[0] for p in op] for op in pieces(case)]


def channel_slices(x: np.ndarray, axis: int) -> list[np.ndarray]:
    """The per-channel definition's slices: ``np.take(x, c, axis)`` flattened in C order."""
    return [
        np.ascontiguousarray(np.take(x, c, axis=axis)).reshape(-1) for c in range(x.shape[axis])
    ]
