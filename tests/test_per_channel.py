"""Per-channel observers against torch 2.13.0's, run live, on every backend."""

from __future__ import annotations

import warnings
import zlib
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

from arrayobs import (
    MinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from arrayobs import functional as F
from arrayobs._compat import to_host
from arrayobs.testing import assert_observers_match

CLASSES = {"minmax": None, "ma0.01": 0.01, "ma0.5": 0.5, "ma1": 1.0}
QSCHEMES = ("per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams")
# (host shape, ch_axis, view): view "T" observes x.T, "cols" x[:, ::2] (non-contiguous).
LAYOUTS = {
    "2d_ch0": ((4, 6), 0, None),
    "2d_last": ((5, 3), -1, None),
    "3d_mid": ((2, 3, 4), 1, None),
    "4d_nchw": ((2, 3, 2, 2), 1, None),
    "4d_last": ((2, 2, 2, 3), 3, None),
    "c1": ((1, 7), 0, None),
    "len1": ((5, 1), 0, None),
    "transposed": ((6, 3), 0, "T"),
    "columns": ((3, 8), 0, "cols"),
    # 64 rows or more: JAX's blocked reduction over rows (single device, on the CPU).
    "tall": ((150, 3), -1, None),
    "tall_3d": ((130, 3, 2), 1, None),
}
INPUT_DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "bool")
SLOW = ("dask", "jax")


def _seed(*parts: object) -> int:
    return zlib.crc32(repr(parts).encode())


def _make(kind: str, cls_args: dict[str, Any], **kw: Any) -> Any:
    c = CLASSES[kind]
    if c is None:
        return PerChannelMinMaxObserver(**cls_args, **kw)
    return MovingAveragePerChannelMinMaxObserver(c, **cls_args, **kw)


def _torch_observer(torch: Any, kind: str, **kw: Any) -> Any:
    from torch.ao.quantization import observer as tobs

    tkw = {**kw}
    for name in ("dtype", "qscheme"):
        if name in tkw:
            tkw[name] = getattr(torch, tkw[name])
    c = CLASSES[kind]
    if c is None:
        return tobs.PerChannelMinMaxObserver(**tkw)
    return tobs.MovingAveragePerChannelMinMaxObserver(c, **tkw)


def _values(rng: np.random.Generator, shape: tuple[int, ...], ch_axis: int, step: int) -> Any:
    """float64 values: mixed scales, with one channel sometimes constant, NaN or infinite."""
    scale = 10.0 ** rng.uniform(-3, 3)
    v = rng.standard_normal(shape) * scale + rng.uniform(-1, 1) * scale
    index: list[Any] = [slice(None)] * len(shape)
    index[ch_axis] = int(rng.integers(shape[ch_axis]))
    channel = tuple(index)
    mode = (step + int(rng.integers(4))) % 6
    if mode == 1:
        v[channel] = v[channel].reshape(-1)[0]
    elif mode == 2:
        v[channel] = np.nan
    elif mode == 3:
        v[channel] = np.inf if rng.random() < 0.5 else -np.inf
    elif mode == 4:
        v[...] = np.where(rng.random(shape) < 0.5, 0.0, -0.0)
    return v


def _batch(torch: Any, values: np.ndarray, dtype_name: str) -> Any:
    if dtype_name == "bool":
        return torch.from_numpy(values > 0)
    dtype = getattr(torch, dtype_name)
    if dtype.is_floating_point:
        return torch.from_numpy(values).to(dtype)
    finite = np.nan_to_num(values, nan=0.0, posinf=1e9, neginf=-1e9)
    return torch.from_numpy(np.clip(np.rint(finite * 50), -128, 127)).to(dtype)


def _view(x: Any, view: str | None, xp: Any) -> Any:
    if view == "T":
        return x.T if xp is None else xp.permute_dims(x, (1, 0))
    if view == "cols":
        return x[:, ::2]
    return x


def _same_state(obs: Any, before: tuple[np.ndarray, np.ndarray], shape: tuple[int, ...]) -> None:
    for got, want in zip((obs.min_val, obs.max_val), before, strict=True):
        assert tuple(got.shape) == shape
        assert np.array_equal(to_host(got), want, equal_nan=True)


# -- against torch, batch by batch ---------------------------------------------------
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("qscheme", QSCHEMES)
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_matches_torch_after_every_batch(
    backend: Any, torch_ref: Any, kind: str, qscheme: str, layout: str
) -> None:
    torch = torch_ref
    shape, ch_axis, view = LAYOUTS[layout]
    dtype = "qint8" if qscheme == "per_channel_symmetric" else "quint8"
    kw = {"ch_axis": ch_axis, "dtype": dtype, "qscheme": qscheme}
    in_dtypes = [d for d in INPUT_DTYPES if backend.has(d)]
    if backend.library in SLOW:
        start = _seed(kind, qscheme, layout) % len(in_dtypes)
        in_dtypes = (in_dtypes * 2)[start : start + 2]
    for in_dtype in in_dtypes:
        ours = _make(kind, kw, xp=backend.xp, device=backend.device)
        ref = _torch_observer(torch, kind, **kw)
        rng = np.random.default_rng(_seed(kind, qscheme, layout, in_dtype))
        host_axis = 1 if view == "T" else ch_axis
        for step in range(4):
            t = _batch(torch, _values(rng, shape, host_axis, step), in_dtype)
            x = _view(backend.from_torch(t), view, backend.xp)
            assert ours(x) is x
            ref(_view(t, view, None))
            where = f"[{backend.name} {kind} {kw} input {in_dtype} batch {step}]"
            assert_observers_match(ours, ref, xp=backend.xp, device=backend.device, where=where)


def test_one_dimensional_input_is_one_value_per_channel(backend: Any, torch_ref: Any) -> None:
    """torch raises IndexError for a 1-d input (flatten(start_dim=1)); arrayobs takes
    each element as a channel: the same as torch on the (C, 1) input."""
    values = np.asarray([1.5, -2.0, np.nan, 0.0, np.inf], np.float32)
    for kind in ("minmax", "ma0.5"):
        ours = _make(kind, {}, xp=backend.xp, device=backend.device)
        ref = _torch_observer(torch_ref, kind)
        for step in range(2):
            ours(backend.from_numpy(values * (step + 1)))
            ref(torch_ref.from_numpy(values[:, None] * (step + 1)))
        assert_observers_match(ours, ref, xp=backend.xp, device=backend.device, where=kind)
    with pytest.raises(IndexError):
        _torch_observer(torch_ref, "minmax")(torch_ref.from_numpy(values))


# -- construction ----------------------------------------------------------------
REFUSED = [
    {"qscheme": "per_tensor_affine"},
    {"qscheme": "per_tensor_symmetric"},
    {"is_dynamic": True},
    {"qscheme": "per_channel_symmetric", "reduce_range": True, "dtype": "quint8"},
    {"quant_min": 1, "quant_max": 10},
    {"quant_min": -200, "quant_max": 200, "dtype": "qint8"},
]
ACCEPTED = [
    {},
    {"qscheme": "per_channel_symmetric", "reduce_range": True, "dtype": "uint8"},
    {"qscheme": "per_channel_affine_float_qparams", "dtype": "quint4x2"},
    {"qscheme": "per_channel_symmetric", "dtype": "qint8", "quant_min": -8, "quant_max": 7},
    {"ch_axis": -2, "reduce_range": True},
    {"dtype": "uint16", "eps": 1e-3},
]


@pytest.mark.parametrize("kind", ["minmax", "ma0.01"])
@pytest.mark.parametrize("kw", REFUSED, ids=[str(k) for k in REFUSED])
def test_refuses_what_torch_refuses(torch_ref: Any, kind: str, kw: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((NotImplementedError, AssertionError, ValueError)) as torch_exc:
            _torch_observer(torch_ref, kind, **kw)
        expected = NotImplementedError if torch_exc.type is NotImplementedError else (ValueError,)
        with pytest.raises(expected):
            _make(kind, kw)


@pytest.mark.parametrize("kind", ["minmax", "ma0.01"])
@pytest.mark.parametrize("kw", ACCEPTED, ids=[str(k) for k in ACCEPTED])
def test_accepts_what_torch_accepts(torch_ref: Any, kind: str, kw: dict[str, Any]) -> None:
    with warnings.catch_warnings(record=True) as ref_w:
        warnings.simplefilter("always")
        ref = _torch_observer(torch_ref, kind, **kw)
    with warnings.catch_warnings(record=True) as ours_w:
        warnings.simplefilter("always")
        ours = _make(kind, kw)
    assert [w.category for w in ours_w] == [w.category for w in ref_w]
    assert (ours.quant_min, ours.quant_max, ours.ch_axis) == (
        ref.quant_min,
        ref.quant_max,
        ref.ch_axis,
    )
    assert np.array_equal(to_host(ours.eps), ref.eps.numpy())
    sd = ours.state_dict()
    assert [tuple(v.shape) for v in sd.values()] == [(1,), (0,), (0,)]
    assert {k: tuple(v.shape) for k, v in ref.state_dict().items()} == {
        k: tuple(v.shape) for k, v in sd.items()
    }


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="ch_axis"):
        PerChannelMinMaxObserver(ch_axis=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="ch_axis"):
        PerChannelMinMaxObserver(ch_axis=True)
    with pytest.raises(TypeError, match="averaging_constant"):
        MovingAveragePerChannelMinMaxObserver(averaging_constant="0.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="process_group needs torch"):
        PerChannelMinMaxObserver(xp=np, process_group=object())
    assert not isinstance(PerChannelMinMaxObserver(), MinMaxObserver)  # as in torch


# -- bad input leaves the state as it was --------------------------------------
def test_bad_input_raises_and_changes_nothing(backend: Any, torch_ref: Any) -> None:
    xp = backend.xp
    obs = MovingAveragePerChannelMinMaxObserver(0.5, ch_axis=1, xp=xp, device=backend.device)
    first = np.arange(12, dtype=np.float32).reshape(4, 3)
    obs(backend.from_numpy(first))
    before = (to_host(obs.min_val).copy(), to_host(obs.max_val).copy())
    bad: list[tuple[Any, type[Exception], str]] = [
        (backend.from_numpy(np.ones((4, 5), np.float32)), ValueError, "channels"),
        (backend.from_numpy(np.ones((3,), np.float32)), ValueError, "ch_axis 1"),
        (backend.from_numpy(np.asarray(2.0, np.float32)), ValueError, "ch_axis 1"),
        ([[1.0, 2.0, 3.0]], TypeError, "observes arrays"),
    ]
    if backend.library != "numpy":
        bad.append((np.ones((2, 3), np.float32), TypeError, "bound to"))
    for x, exc, match in bad:
        with pytest.raises(exc, match=match):
            obs(x)
        _same_state(obs, before, (3,))
    # An empty batch changes nothing and is not checked, as in torch.
    obs(backend.from_numpy(np.ones((0,), np.float32)))
    _same_state(obs, before, (3,))
    ref = _torch_observer(torch_ref, "ma0.5", ch_axis=1)
    ref(torch_ref.from_numpy(first))
    ref(torch_ref.ones(0))
    assert_observers_match(obs, ref, xp=xp, device=backend.device)
    # A fresh observer refuses a rank without ch_axis before taking any shape.
    fresh = PerChannelMinMaxObserver(ch_axis=2, xp=xp, device=backend.device)
    with pytest.raises(ValueError, match="out of range"):
        fresh(backend.from_numpy(first))
    _same_state(fresh, (np.zeros(0, np.float32), np.zeros(0, np.float32)), (0,))


def test_complex_input_is_refused(torch_ref: Any) -> None:
    obs = PerChannelMinMaxObserver()
    with pytest.raises(TypeError, match="real or bool"):
        obs(np.ones((2, 2), np.complex64))
    assert obs.min_val.shape == (0,)


# -- state_dict -----------------------------------------------------------------
def _torch_state_dict(torch: Any, sd: OrderedDict[str, Any]) -> OrderedDict[str, Any]:
    out: OrderedDict[str, Any] = OrderedDict(
        (k, torch.from_numpy(np.array(to_host(v)))) for k, v in sd.items()
    )
    out._metadata = sd._metadata  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize("kind", ["minmax", "ma0.5"])
def test_state_dicts_round_trip_with_torch(backend: Any, torch_ref: Any, kind: str) -> None:
    torch = torch_ref
    kw = {"ch_axis": 0, "qscheme": "per_channel_symmetric", "dtype": "qint8", "eps": 1e-4}
    rng = np.random.default_rng(_seed("state_dict", kind))
    batches = [torch.from_numpy(rng.standard_normal((3, 5)).astype(np.float32)) for _ in range(4)]
    ref = _torch_observer(torch, kind, **kw)
    ours = _make(kind, kw, xp=backend.xp, device=backend.device)
    # A fresh observer's state_dict loads both ways: shape (0,).
    ours.load_state_dict(ref.state_dict())
    assert ours.min_val.shape == (0,)
    ref2 = _torch_observer(torch, kind, **kw)
    ref2.load_state_dict(_torch_state_dict(torch, ours.state_dict()))
    assert ref2.min_val.shape == (0,)
    # An observed torch state_dict (version 3) loads, and both go on in lockstep.
    for b in batches[:2]:
        ref(b)
    ours.load_state_dict(ref.state_dict())
    assert_observers_match(ours, ref, xp=backend.xp, device=backend.device)
    for b in batches[2:]:
        ref(b)
        ours(backend.from_torch(b))
        assert_observers_match(ours, ref, xp=backend.xp, device=backend.device)
    # And ours into torch.
    ref3 = _torch_observer(torch, kind, **kw)
    ref3.load_state_dict(_torch_state_dict(torch, ours.state_dict()))
    assert torch.equal(ref3.min_val, ref.min_val) and torch.equal(ref3.max_val, ref.max_val)
    assert torch.equal(ref3.eps, ref.eps)


def test_version_2_state_dict_is_converted(backend: Any, torch_ref: Any) -> None:
    """torch 2.13.0 resizes its buffers for a v2 state_dict and never fills them;
    arrayobs loads ``min_vals``/``max_vals`` as the values they are."""
    sd: OrderedDict[str, Any] = OrderedDict(
        eps=torch_ref.tensor([2e-3]),
        min_vals=torch_ref.tensor([-1.0, 0.5, -3.0]),
        max_vals=torch_ref.tensor([2.0, 0.75, 1.0]),
    )
    sd._metadata = {"": {"version": 2}}  # type: ignore[attr-defined]
    obs = PerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    obs.load_state_dict(sd)
    assert np.array_equal(to_host(obs.min_val), [-1.0, 0.5, -3.0])
    assert np.array_equal(to_host(obs.max_val), [2.0, 0.75, 1.0])
    assert float(to_host(obs.eps)[0]) == np.float32(2e-3)
    # Version 1 had no eps: the default, as torch.
    del sd["eps"]
    sd._metadata = {"": {"version": 1}}  # type: ignore[attr-defined]
    obs.load_state_dict(sd)
    assert float(to_host(obs.eps)[0]) == np.finfo(np.float32).eps


MALFORMED: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"min_val": [[0.0]], "max_val": [[1.0]]}, ValueError, "shape"),
    ({"min_val": [0.0, 1.0], "max_val": [1.0]}, ValueError, "differ in shape"),
    ({"min_val": [0.0, 2.0], "max_val": [1.0, 1.0]}, ValueError, "channel 1"),
    ({"min_val": [np.inf], "max_val": [-np.inf]}, ValueError, "channel 0"),
    ({"min_val": ["a"], "max_val": [1.0]}, TypeError, "real dtype"),
    ({"min_val": [0.0]}, KeyError, "missing"),
    # No eps and no version-1 metadata: refused, as per tensor (docs/exactness.md).
    ({"eps": None, "min_val": [0.0], "max_val": [1.0]}, KeyError, "missing keys \\['eps'\\]"),
    ({"min_val": [0.0], "max_val": [1.0], "extra": [1.0]}, KeyError, "unexpected"),
    ({"min_val": [0.0], "max_val": [1.0], "eps": [np.nan]}, ValueError, "NaN"),
    ({"min_val": [0.0], "max_val": [1.0], "eps": [1.0, 2.0]}, ValueError, "shape"),
]


@pytest.mark.parametrize(("entries", "exc", "match"), MALFORMED)
def test_malformed_state_dict_changes_nothing(
    entries: dict[str, Any], exc: type[Exception], match: str
) -> None:
    obs = MovingAveragePerChannelMinMaxObserver(0.5)
    obs(np.asarray([[1.0, 2.0], [-1.0, 4.0]], np.float32))
    before = (to_host(obs.min_val).copy(), to_host(obs.max_val).copy())
    eps = to_host(obs.eps).copy()
    sd = {"eps": [1e-3], **entries}
    with pytest.raises(exc, match=match):
        obs.load_state_dict({k: np.asarray(v) for k, v in sd.items() if v is not None})
    _same_state(obs, before, (2,))
    assert np.array_equal(to_host(obs.eps), eps)


# -- the (min, max) layer: fast paths against the generic path, bit for bit ----------
SPECIALS = np.asarray(
    [np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -3e-42, 3e38, -3e38], np.float64
)


@pytest.mark.parametrize("in_dtype", ["float32", "float16", "bfloat16", "float64", "int8", "bool"])
def test_fast_path_is_the_generic_path(
    backend: Any, torch_ref: Any, in_dtype: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not backend.has(in_dtype):
        pytest.skip(f"no {in_dtype} on {backend.name}")
    from arrayobs._backends import _numpy

    # Small thresholds, so small arrays take the blocked and threaded branches.
    monkeypatch.setattr(_numpy, "BLOCK_BYTES", 64)
    monkeypatch.setattr(_numpy, "THREAD_MIN_BYTES", 16)
    rng = np.random.default_rng(_seed("fast", in_dtype))
    shapes = [((3, 40), 0), ((40, 3), -1), ((4, 5, 6), 1), ((2, 3, 4, 5), 3), ((1, 50), 0)]
    shapes += [((6, 1), 0), ((7,), 0), ((2, 9, 2), 0)]
    if backend.library in SLOW:
        shapes = shapes[::2]
    for shape, ch_axis in shapes:
        for trial in range(3):
            v = rng.standard_normal(shape) * 10.0 ** rng.uniform(-2, 2)
            flat = v.reshape(-1)
            if trial:
                picks = rng.integers(0, flat.size, size=max(1, flat.size // 7))
                flat[picks] = rng.choice(SPECIALS, size=picks.size)
            t = _batch(torch_ref, v, in_dtype)
            for view in (None, "T") if len(shape) == 2 else (None,):
                x = _view(backend.from_torch(t), view, backend.xp)
                axis = ch_axis if view is None else (1 - ch_axis % 2)
                fast = F.batch_minmax(x, ch_axis=axis, fast=True)
                slow = F.batch_minmax(x, ch_axis=axis, fast=False)
                assert fast is not None and slow is not None
                for got, want in zip(fast, slow, strict=True):
                    g, w = to_host(got), to_host(want)
                    assert g.dtype == np.float32 and g.shape == w.shape
                    # == lets +0.0 and -0.0 match (a tie is the backend's choice).
                    same = (g == w) | (np.isnan(g) & np.isnan(w))
                    assert same.all(), f"{shape} axis {axis} {view}: {g} vs {w}"


# -- functional core ---------------------------------------------------------------
def test_functional_per_channel(backend: Any, torch_ref: Any) -> None:
    xp = backend.xp
    rng = np.random.default_rng(7)
    batches = [rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3)]
    for kind in ("minmax", "ma0.5"):
        c = CLASSES[kind]
        state = F.init_state(xp=xp, device=backend.device, channels=3)
        assert tuple(state.min_val.shape) == (3,)
        ref = _torch_observer(torch_ref, kind, ch_axis=1)
        for b in batches:
            x = backend.from_numpy(b)
            if c is None:
                state = F.minmax_update(state, x, ch_axis=1)
            else:
                state = F.moving_average_update(state, x, c, ch_axis=1)
            ref(torch_ref.from_numpy(b))
        assert np.array_equal(to_host(state.min_val), ref.min_val.numpy())
        assert np.array_equal(to_host(state.max_val), ref.max_val.numpy())
        with pytest.raises(ValueError, match="channels"):
            F.minmax_update(state, backend.from_numpy(batches[0]), ch_axis=2)
        with pytest.raises(ValueError, match="0-d state"):
            F.minmax_update(state, backend.from_numpy(batches[0]))


def test_functional_per_channel_under_jit(torch_ref: Any) -> None:
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    cfg = F.quant_config("quint8", "per_channel_affine_float_qparams", per_tensor=False)
    update = jax.jit(lambda s, x: F.moving_average_update(s, x, 0.01, ch_axis=-1))
    qparams = jax.jit(lambda s: F.calculate_qparams(s, cfg))
    ref = _torch_observer(
        torch_ref, "ma0.01", ch_axis=-1, qscheme="per_channel_affine_float_qparams"
    )
    state = F.init_state(xp=jnp, channels=4)
    rng = np.random.default_rng(3)
    for _ in range(3):
        b = (rng.standard_normal((5, 4)) * 3).astype(np.float32)
        state = update(state, jnp.asarray(b))
        ref(torch_ref.from_numpy(b))
    scale, zp = qparams(state)
    want_scale, want_zp = ref.calculate_qparams()
    assert np.array_equal(np.asarray(scale), want_scale.numpy())
    assert np.array_equal(np.asarray(zp), want_zp.numpy())
    assert zp.dtype == jnp.float32


# -- reset, merge ----------------------------------------------------------------------
def test_reset_keeps_namespace_and_device(backend: Any) -> None:
    obs = PerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(np.ones((3, 2), np.float32)))
    obs.reset_min_max_vals()
    assert tuple(obs.min_val.shape) == (0,)
    assert obs.xp is backend.xp and obs.device == backend.device
    with pytest.warns(UserWarning, match="must run observer"):
        scale, zp = obs.calculate_qparams()
    assert to_host(scale).tolist() == [1.0] and to_host(zp).tolist() == [0]
    obs(backend.from_numpy(np.ones((5, 2), np.float32)))  # any channel count again
    assert tuple(obs.min_val.shape) == (5,)


def test_merge_is_observing_everything(backend: Any, torch_ref: Any) -> None:
    rng = np.random.default_rng(11)
    batches = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]
    batches[2][1, 1] = np.nan
    a = PerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    b = PerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    fresh = PerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    ref = _torch_observer(torch_ref, "minmax")
    for i, x in enumerate(batches):
        (a if i < 2 else b)(backend.from_numpy(x))
        ref(torch_ref.from_numpy(x))
    fresh.merge(a)
    fresh.merge(b)
    a.merge(b)
    for obs in (a, fresh):
        assert_observers_match(obs, ref, xp=backend.xp, device=backend.device)
    other = PerChannelMinMaxObserver(ch_axis=1, xp=backend.xp, device=backend.device)
    other(backend.from_numpy(batches[0]))
    with pytest.raises(ValueError, match="configurations"):
        a.merge(other)
    wide = PerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    wide(backend.from_numpy(np.ones((5, 2), np.float32)))
    with pytest.raises(ValueError, match="channels"):
        a.merge(wide)
    assert_observers_match(a, ref, xp=backend.xp, device=backend.device)
    ma = MovingAveragePerChannelMinMaxObserver(xp=backend.xp, device=backend.device)
    with pytest.raises(TypeError, match="cannot be merged"):
        ma.merge(MovingAveragePerChannelMinMaxObserver(xp=backend.xp, device=backend.device))
