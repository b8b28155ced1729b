"""The observer classes' API: defaults, validation, binding, errors that change nothing."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
from arrayobs._compat import array_namespace, device_of, to_host

CLASSES = [MinMaxObserver, MovingAverageMinMaxObserver]


def _snapshot(obs: Any) -> tuple[Any, ...]:
    """Everything an error must leave as it was."""
    return (
        obs.xp,
        obs.device,
        obs.config,
        float(to_host(obs.min_val)),
        float(to_host(obs.max_val)),
        obs._observed,
        type(obs.min_val),
    )


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


def test_defaults_match_torch(torch_ref: Any) -> None:
    from torch.ao.quantization import observer as tobs

    for ours, ref in (
        (MinMaxObserver(), tobs.MinMaxObserver()),
        (MovingAverageMinMaxObserver(), tobs.MovingAverageMinMaxObserver()),
    ):
        assert ours.dtype == str(ref.dtype).removeprefix("torch.")
        assert ours.qscheme == str(ref.qscheme).removeprefix("torch.")
        assert (ours.reduce_range, ours.quant_min, ours.quant_max) == (
            ref.reduce_range,
            ref.quant_min,
            ref.quant_max,
        )
        assert ours.has_customized_qrange == ref.has_customized_qrange
        assert ours.is_dynamic == ref.is_dynamic
        assert np.asarray(ours.eps).tobytes() == ref.eps.numpy().tobytes()
        assert ours.eps.shape == (1,)
        assert repr(ours) == repr(ref)
    assert (
        MovingAverageMinMaxObserver().averaging_constant
        == tobs.MovingAverageMinMaxObserver().averaging_constant
    )


def test_torch_objects_accepted(torch_ref: Any) -> None:
    torch = torch_ref
    obs = MinMaxObserver(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    assert (obs.dtype, obs.qscheme) == ("qint8", "per_tensor_symmetric")


@pytest.mark.parametrize(
    "dtype",
    ["quint4x2", "float8_e5m2", "float8_e4m3fn", "int32", "int16", "uint16", "int8", "uint8"],
)
def test_every_dtype_range_matches_torch(torch_ref: Any, dtype: str) -> None:
    from torch.ao.quantization import observer as tobs

    for rr in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ours = MinMaxObserver(dtype=dtype, reduce_range=rr)
            ref = tobs.MinMaxObserver(dtype=getattr(torch_ref, dtype), reduce_range=rr)
        assert (ours.quant_min, ours.quant_max) == (ref.quant_min, ref.quant_max), (dtype, rr)


# (kwargs, arrayobs exception, message fragment, torch also refuses it)
BAD_CONSTRUCTION = [
    ({"qscheme": "per_channel_affine"}, NotImplementedError, "per-channel", True),
    ({"qscheme": "per_channel_affine_float_qparams"}, NotImplementedError, "per-channel", True),
    ({"qscheme": "per_tensor_fancy"}, ValueError, "per_tensor_fancy", True),
    ({"dtype": "float32"}, ValueError, "float32", True),
    ({"dtype": "qint4"}, ValueError, "qint4", True),
    ({"quant_min": 1, "quant_max": 10}, ValueError, "include 0", True),
    ({"quant_min": -10, "quant_max": -1}, ValueError, "include 0", True),
    ({"quant_min": 0, "quant_max": 0}, ValueError, "less than", True),
    ({"dtype": "qint8", "quant_min": -200, "quant_max": 100}, ValueError, "at most 256", True),
    (
        {"dtype": "qint32", "quant_min": -(2**32), "quant_max": 2**31},
        ValueError,
        "at most 4294967296",
        True,
    ),
    (
        {"qscheme": "per_tensor_symmetric", "reduce_range": True},
        NotImplementedError,
        "quint8",
        True,
    ),
    ({"quant_min": "0", "quant_max": 255}, TypeError, "quant_min", False),
    ({"quant_min": 0, "quant_max": 2.5}, TypeError, "quant_max", False),
    ({"eps": "small"}, TypeError, "eps", False),
    ({"eps": float("nan")}, ValueError, "NaN", False),
    ({"reduce_range": 1}, TypeError, "reduce_range", False),
    ({"is_dynamic": "yes"}, TypeError, "is_dynamic", False),
    ({"dtype": 8}, TypeError, "dtype", False),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(("kw", "exc", "fragment", "torch_refuses"), BAD_CONSTRUCTION)
def test_construction_errors(
    torch_ref: Any, cls: Any, kw: dict[str, Any], exc: type, fragment: str, torch_refuses: bool
) -> None:
    from torch.ao.quantization import observer as tobs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(exc, match=fragment):
            cls(**kw)
        if torch_refuses:
            tkw = {
                k: getattr(torch_ref, v)
                if k in ("dtype", "qscheme") and hasattr(torch_ref, v)
                else v
                for k, v in kw.items()
            }
            if tkw.get("qscheme") == "per_tensor_fancy":
                tkw["qscheme"] = torch_ref.float32  # torch has no such name; any non-qscheme object
            tcls = getattr(tobs, cls.__name__)
            with pytest.raises((AssertionError, NotImplementedError)):
                tcls(**tkw)


def test_accepted_where_torch_accepts(torch_ref: Any) -> None:
    from torch.ao.quantization import observer as tobs

    # quint8 ranges are not length-capped; one-sided ranges are ignored; uint8 symmetric may reduce.
    for kw in ({"quant_min": 0, "quant_max": 1000}, {"quant_min": -5}, {"quant_max": 7}):
        ours, ref = MinMaxObserver(**kw), tobs.MinMaxObserver(**kw)
        assert (ours.quant_min, ours.quant_max) == (ref.quant_min, ref.quant_max)
    with pytest.warns(UserWarning, match="reduce_range"):
        obs = MinMaxObserver(dtype="uint8", qscheme="per_tensor_symmetric", reduce_range=True)
    assert (obs.quant_min, obs.quant_max) == (0, 127)


def test_moving_average_rules() -> None:
    with pytest.raises(NotImplementedError, match="averaging_constant=1"):
        MovingAverageMinMaxObserver(0.5, is_dynamic=True)
    assert MovingAverageMinMaxObserver(1.0, is_dynamic=True).is_dynamic
    with pytest.raises(TypeError, match="averaging_constant"):
        MovingAverageMinMaxObserver("0.5")
    # No range check, as in torch.
    assert MovingAverageMinMaxObserver(-3.0).averaging_constant == -3.0


def test_xp_and_device_arguments() -> None:
    with pytest.raises(TypeError, match="array library"):
        MinMaxObserver(xp="numpy")
    with pytest.raises(ValueError, match="device needs xp"):
        MinMaxObserver(device="cpu")


@pytest.mark.parametrize("cls", CLASSES)
def test_forward_returns_input_and_binds(backend: Any, cls: Any) -> None:
    obs = cls(xp=backend.xp, device=backend.device)
    x = backend.from_numpy(np.asarray([1.0, -2.0, 3.0], dtype=np.float32))
    assert obs(x) is x
    assert obs.forward(x) is x
    for v in (obs.min_val, obs.max_val):
        assert array_namespace(v) is backend.xp
        assert v.dtype == backend.xp.float32 and v.shape == ()
        assert device_of(v) == backend.device
    assert float(to_host(obs.min_val)) == -2.0


@pytest.mark.parametrize("cls", CLASSES)
def test_unbound_observer_binds_to_first_array(backend: Any, cls: Any) -> None:
    obs = cls()
    assert obs.xp is None
    assert isinstance(obs.min_val, np.ndarray)
    x = backend.from_numpy(np.asarray([0.5, 4.0], dtype=np.float32))
    obs(x)
    assert obs.xp is backend.xp
    assert array_namespace(obs.min_val) is backend.xp
    assert device_of(obs.min_val) == backend.device
    scale, _ = obs.calculate_qparams()
    assert array_namespace(scale) is backend.xp


def _foreign_array(backend: Any) -> Any:
    """An array of another namespace than the backend's."""
    if backend.library == "numpy":
        strict = pytest.importorskip("array_api_strict")
        return strict.asarray([9.0, -9.0])
    return np.asarray([9.0, -9.0], dtype=np.float32)


@pytest.mark.parametrize("cls", CLASSES)
def test_other_namespace_is_refused_and_changes_nothing(backend: Any, cls: Any) -> None:
    obs = cls(xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(np.asarray([1.0, 2.0], dtype=np.float32)))
    before = _snapshot(obs)
    with pytest.raises(TypeError, match=r"bound to .* got an array of"):
        obs(_foreign_array(backend))
    assert _same(before, _snapshot(obs))


@pytest.mark.parametrize("cls", CLASSES)
def test_other_device_is_refused_and_changes_nothing(cls: Any) -> None:
    strict = pytest.importorskip("array_api_strict")
    obs = cls(xp=strict)
    obs(strict.asarray([1.0, 2.0]))
    before = _snapshot(obs)
    with pytest.raises(ValueError, match=r"CPU_DEVICE.*device1"):
        obs(strict.asarray([5.0], device=strict.Device("device1")))
    assert _same(before, _snapshot(obs))
    # An unbound observer, once bound, refuses the other device too.
    free = cls()
    free(strict.asarray([1.0], device=strict.Device("device1")))
    with pytest.raises(ValueError, match="device1"):
        free(strict.asarray([1.0]))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("bad", ["list", "complex", "scalar"])
def test_bad_input_is_refused_and_changes_nothing(backend: Any, cls: Any, bad: str) -> None:
    obs = cls(xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(np.asarray([1.0, 2.0], dtype=np.float32)))
    before = _snapshot(obs)
    if bad == "list":
        value: Any = [1.0, 2.0]
    elif bad == "scalar":
        value = 3.0
    else:
        if not backend.has("complex64"):
            pytest.skip(f"{backend.name} has no complex64")
        value = backend.xp.asarray([1 + 2j], dtype=backend.xp.complex64, device=backend.device)
    with pytest.raises(TypeError):
        obs(value)
    assert _same(before, _snapshot(obs))


@pytest.mark.parametrize("cls", CLASSES)
def test_empty_input_is_a_no_op(backend: Any, cls: Any) -> None:
    obs = cls(xp=backend.xp, device=backend.device)
    empty = backend.from_numpy(np.zeros((0, 3), dtype=np.float32))
    assert obs(empty) is empty
    with pytest.warns(UserWarning, match="must run observer"):
        obs.calculate_qparams()
    obs(backend.from_numpy(np.asarray([1.0], dtype=np.float32)))
    before = _snapshot(obs)
    obs(empty)
    assert _same(before, _snapshot(obs))


@pytest.mark.parametrize("cls", CLASSES)
def test_never_observed_qparams_and_reset(backend: Any, torch_ref: Any, cls: Any) -> None:
    from torch.ao.quantization import observer as tobs

    for qscheme in ("per_tensor_affine", "per_tensor_symmetric"):
        obs = cls(qscheme=qscheme, xp=backend.xp, device=backend.device)
        ref = getattr(tobs, cls.__name__)(qscheme=getattr(torch_ref, qscheme))
        obs(backend.from_numpy(np.asarray([1.0, 5.0], dtype=np.float32)))
        obs.reset_min_max_vals()
        assert (
            array_namespace(obs.min_val) is backend.xp and device_of(obs.min_val) == backend.device
        )
        assert repr(obs) == repr(ref)
        with pytest.warns(UserWarning, match="must run observer"):
            scale, zp = obs.calculate_qparams()
        with pytest.warns(UserWarning, match="must run observer"):
            want_scale, want_zp = ref.calculate_qparams()
        assert to_host(scale).tobytes() == want_scale.numpy().tobytes()
        assert scale.dtype == backend.xp.float32
        want_zp_dtype = backend.xp.int64 if backend.has("int64") else backend.xp.int32
        assert zp.dtype == want_zp_dtype and to_host(zp).tolist() == want_zp.tolist()


def test_repr_after_observing(backend: Any, torch_ref: Any) -> None:
    from torch.ao.quantization import observer as tobs

    ours, ref = (
        MovingAverageMinMaxObserver(xp=backend.xp, device=backend.device),
        tobs.MovingAverageMinMaxObserver(),
    )
    values = np.asarray([0.1, -0.3, 7.25], dtype=np.float32)
    ours(backend.from_numpy(values))
    ref(torch_ref.from_numpy(values))
    assert (
        repr(ours)
        == repr(ref)
        == "MovingAverageMinMaxObserver(min_val=-0.30000001192092896, max_val=7.25)"
    )


def test_with_args_factories() -> None:
    factory = MinMaxObserver.with_args(dtype="qint8").with_args(qscheme="per_tensor_symmetric")
    a, b = factory(), factory()
    assert a is not b
    assert (a.dtype, a.qscheme) == ("qint8", "per_tensor_symmetric")
    assert factory(dtype="quint8").dtype == "quint8"
    calls = []

    def make_eps() -> float:
        calls.append(1)
        return 2.0**-10

    lazy = MovingAverageMinMaxObserver.with_callable_args(eps=make_eps).with_args(
        averaging_constant=0.5
    )
    obs = lazy()
    assert float(np.asarray(obs.eps)[0]) == 2.0**-10 and obs.averaging_constant == 0.5
    lazy()
    assert len(calls) == 2


def test_docs_disagree_with_code_constant_input(torch_ref: Any) -> None:
    """torch's docs: min == max gives scale 1.0, zero point 0; its code (and arrayobs) disagree."""
    from torch.ao.quantization import observer as tobs

    ours, ref = MinMaxObserver(), tobs.MinMaxObserver()
    ours(np.full(4, 2.0, dtype=np.float32))
    ref(torch_ref.full((4,), 2.0))
    scale, _ = ours.calculate_qparams()
    assert scale.tobytes() == ref.calculate_qparams()[0].numpy().tobytes()
    assert float(scale[0]) != 1.0
