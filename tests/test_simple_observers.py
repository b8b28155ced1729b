"""The observers that compute nothing (fixed qparams, placeholders, recording) against torch.ao."""

from __future__ import annotations

import copy
import doctest
import pickle
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

import arrayobs
from arrayobs._compat import array_namespace, device_of, to_host
from arrayobs._observers import _simple
from arrayobs._observers._simple import (
    FixedQParamsObserver,
    NoopObserver,
    PlaceholderObserver,
    RecordingObserver,
    ReuseInputObserver,
)

EMPTY = [PlaceholderObserver, NoopObserver, ReuseInputObserver, RecordingObserver]
CLASSES = [FixedQParamsObserver, *EMPTY]
FIXED_DEFAULTS = [
    "default_fixed_qparams_range_neg1to1_observer",
    "default_fixed_qparams_range_0to1_observer",
    "default_symmetric_fixed_qparams_observer",
    "default_affine_fixed_qparams_observer",
]
OTHER_DEFAULTS = [
    "default_placeholder_observer",
    "default_debug_observer",
    "default_dynamic_quant_observer",
    "default_reuse_input_observer",
]


def _tobs() -> Any:
    from torch.ao.quantization import observer

    return observer


def _torch_kwargs(torch: Any, kw: dict[str, Any]) -> dict[str, Any]:
    names = ("dtype", "qscheme", "compute_dtype")
    return {k: getattr(torch, v) if k in names and isinstance(v, str) else v for k, v in kw.items()}


def _name(obj: Any) -> Any:
    """A torch dtype or qscheme as arrayobs names it; anything else as it is."""
    return str(obj).removeprefix("torch.") if type(obj).__module__ == "torch" else obj


def _attributes(obs: Any) -> dict[str, Any]:
    keys = ("dtype", "qscheme", "quant_min", "quant_max", "eps", "custom_op", "is_dynamic")
    return {k: _name(getattr(obs, k)) for k in keys if hasattr(obs, k)}


def _assert_array_matches(got: Any, want: Any, backend: Any) -> None:
    """``got`` (ours) is an array of the backend with torch tensor ``want``'s dtype,
    shape and bytes."""
    assert array_namespace(got) is backend.xp
    assert device_of(got) == backend.device
    host = to_host(got)
    assert host.dtype.name == _name(want.dtype)
    assert host.shape == tuple(want.shape)
    assert host.tobytes() == want.detach().numpy().tobytes()


def _fixed(backend: Any, *args: Any, **kw: Any) -> FixedQParamsObserver:
    return FixedQParamsObserver(*args, **kw, xp=backend.xp, device=backend.device)


def _qparams_bytes(obs: FixedQParamsObserver) -> tuple[bytes, bytes]:
    scale, zero_point = obs.calculate_qparams()
    return to_host(scale).tobytes(), to_host(zero_point).tobytes()


# -- configuration ---------------------------------------------------------------------

CONFIGS = [
    (FixedQParamsObserver, {"scale": 0.1, "zero_point": 3}),
    (
        FixedQParamsObserver,
        {"scale": 0.5, "zero_point": -1, "dtype": "qint8", "qscheme": "per_tensor_symmetric"},
    ),
    (FixedQParamsObserver, {"scale": 0.5, "zero_point": 0, "quant_min": None, "quant_max": 7}),
    (PlaceholderObserver, {}),
    (PlaceholderObserver, {"dtype": "float16", "custom_op_name": "op", "is_dynamic": True}),
    (
        PlaceholderObserver,
        {"dtype": "quint8", "quant_min": 0, "quant_max": 255, "eps": 0.1},
    ),
    (PlaceholderObserver, {"dtype": "qint8", "qscheme": "per_channel_symmetric", "eps": 3}),
    (NoopObserver, {}),
    (NoopObserver, {"dtype": "float32", "custom_op_name": "embedding"}),
    (ReuseInputObserver, {}),
    (RecordingObserver, {}),
    (RecordingObserver, {"dtype": "qint8"}),
]


@pytest.mark.parametrize(("cls", "kw"), CONFIGS, ids=lambda v: getattr(v, "__name__", None))
def test_attributes_and_repr_match_torch(torch_ref: Any, cls: Any, kw: dict[str, Any]) -> None:
    ours = cls(**kw)
    ref = getattr(_tobs(), cls.__name__)(**_torch_kwargs(torch_ref, kw))
    assert _attributes(ours) == _attributes(ref)
    assert repr(ours) == repr(ref)
    assert ours.extra_repr() == ref.extra_repr()


def test_torch_objects_are_accepted(torch_ref: Any) -> None:
    obs = FixedQParamsObserver(
        0.5, 1, dtype=torch_ref.qint8, qscheme=torch_ref.per_tensor_symmetric
    )
    assert (obs.dtype, obs.qscheme) == ("qint8", "per_tensor_symmetric")
    assert PlaceholderObserver(dtype=torch_ref.float).dtype == "float32"
    assert NoopObserver(dtype=torch_ref.bfloat16).dtype == "bfloat16"


# (class, kwargs, our exception, message fragment, torch's exception or None)
BAD_CONSTRUCTION = [
    (
        FixedQParamsObserver,
        {"is_dynamic": True},
        NotImplementedError,
        "dynamic",
        NotImplementedError,
    ),
    (FixedQParamsObserver, {"zero_point": 2**31}, ValueError, "int32", RuntimeError),
    (FixedQParamsObserver, {"zero_point": -(2**31) - 1}, ValueError, "int32", RuntimeError),
    (FixedQParamsObserver, {"zero_point": 1.5}, TypeError, "zero_point", None),
    (FixedQParamsObserver, {"zero_point": True}, TypeError, "zero_point", None),
    (FixedQParamsObserver, {"scale": "0.1"}, TypeError, "scale", None),
    (FixedQParamsObserver, {"scale": True}, TypeError, "scale", None),
    (FixedQParamsObserver, {"dtype": "bogus"}, ValueError, "bogus", None),
    (FixedQParamsObserver, {"dtype": "float32"}, ValueError, "float32", None),
    (FixedQParamsObserver, {"dtype": 8}, TypeError, "dtype", None),
    (FixedQParamsObserver, {"qscheme": "per_channel_affine"}, ValueError, "per_channel", None),
    (FixedQParamsObserver, {"quant_min": "0"}, TypeError, "quant_min", None),
    (FixedQParamsObserver, {"quant_max": 2.5}, TypeError, "quant_max", None),
    (FixedQParamsObserver, {"is_dynamic": "no"}, TypeError, "is_dynamic", None),
    (FixedQParamsObserver, {"device": "cpu"}, ValueError, "device needs xp", None),
    (FixedQParamsObserver, {"xp": "numpy"}, TypeError, "xp must be", None),
    (PlaceholderObserver, {"dtype": "qint4"}, ValueError, "qint4", None),
    (PlaceholderObserver, {"qscheme": "fancy"}, ValueError, "fancy", None),
    (PlaceholderObserver, {"compute_dtype": 3}, TypeError, "compute_dtype", None),
    (PlaceholderObserver, {"eps": "small"}, TypeError, "eps", None),
    (PlaceholderObserver, {"quant_min": 0.5}, TypeError, "quant_min", None),
    (PlaceholderObserver, {"custom_op_name": 3}, TypeError, "custom_op_name", None),
    (PlaceholderObserver, {"is_dynamic": 1}, TypeError, "is_dynamic", None),
    (NoopObserver, {"dtype": None}, TypeError, "dtype", None),
    (NoopObserver, {"custom_op_name": None}, TypeError, "custom_op_name", None),
    (RecordingObserver, {"dtype": "int4"}, ValueError, "int4", None),
]


@pytest.mark.parametrize(("cls", "kw", "exc", "fragment", "torch_exc"), BAD_CONSTRUCTION)
def test_construction_errors(
    torch_ref: Any, cls: Any, kw: dict[str, Any], exc: type, fragment: str, torch_exc: Any
) -> None:
    if cls is FixedQParamsObserver:
        kw = {"scale": 0.1, "zero_point": 0, **kw}
    with pytest.raises(exc, match=fragment):
        cls(**kw)
    if torch_exc is not None:
        with pytest.raises(torch_exc):
            getattr(_tobs(), cls.__name__)(**_torch_kwargs(torch_ref, kw))


def test_compute_dtype_warns_and_changes_nothing_as_in_torch(torch_ref: Any) -> None:
    with pytest.warns(UserWarning, match="is_dynamic"):
        ours = PlaceholderObserver(compute_dtype="quint8")
    with pytest.warns(UserWarning, match="is_dynamic"):
        ref = _tobs().PlaceholderObserver(compute_dtype=torch_ref.quint8)
    assert ours.is_dynamic is ref.is_dynamic is False
    assert _attributes(ours) == _attributes(ref)


# -- forward and qparams ---------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_forward_returns_its_input(backend: Any, cls: Any) -> None:
    obs = _fixed(backend, 0.1, 3) if cls is FixedQParamsObserver else cls()
    before = _qparams_bytes(obs) if cls is FixedQParamsObserver else None
    x = backend.from_numpy(np.asarray([-2.0, 0.5, 7.0], dtype=np.float32))
    assert obs(x) is x
    assert obs.forward(x) is x
    if before is not None:
        assert _qparams_bytes(obs) == before  # nothing observed


FIXED = [
    (0.1, 3),
    (2.0 / 256.0, 128),
    (1.0 / 3.0, -(2**31)),
    (3, 2**31 - 1),
    (-1.0, 0),
    (1e300, 0),
    (float("nan"), 7),
    (np.float64(0.2), np.int64(5)),
]


@pytest.mark.parametrize(("scale", "zero_point"), FIXED, ids=str)
def test_fixed_qparams_match_torch(
    backend: Any, torch_ref: Any, scale: Any, zero_point: Any
) -> None:
    ours = _fixed(backend, scale, zero_point)
    ref = _tobs().FixedQParamsObserver(scale, zero_point)
    for got, want in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        _assert_array_matches(got, want, backend)
    _assert_array_matches(ours.scale, ref.scale, backend)
    _assert_array_matches(ours.zero_point, ref.zero_point, backend)
    assert ours.xp is backend.xp
    assert ours.device == backend.device


def test_fixed_qparams_default_to_numpy(torch_ref: Any) -> None:
    obs = FixedQParamsObserver(0.1, 3)
    scale, zero_point = obs.calculate_qparams()
    assert type(scale) is np.ndarray
    assert type(zero_point) is np.ndarray
    assert obs.xp is array_namespace(scale)


def test_calculate_qparams_returns_copies(backend: Any) -> None:
    obs = _fixed(backend, 0.5, 2)
    scale, zero_point = obs.calculate_qparams()
    if backend.library == "numpy":
        scale[...] = 9.0
        zero_point[...] = 9
    assert float(to_host(obs.calculate_qparams()[0])[0]) == 0.5
    assert int(to_host(obs.calculate_qparams()[1])[0]) == 2


@pytest.mark.parametrize("name", FIXED_DEFAULTS)
def test_fixed_defaults_match_torch(backend: Any, torch_ref: Any, name: str) -> None:
    ours = getattr(_simple, name)(xp=backend.xp, device=backend.device)
    ref = getattr(_tobs(), name)()
    assert _attributes(ours) == _attributes(ref)
    for got, want in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        _assert_array_matches(got, want, backend)


@pytest.mark.parametrize("name", OTHER_DEFAULTS)
def test_other_defaults_match_torch(torch_ref: Any, name: str) -> None:
    ours, ref = getattr(_simple, name)(), getattr(_tobs(), name)()
    assert type(ours).__name__ == type(ref).__name__
    assert _attributes(ours) == _attributes(ref)
    assert repr(ours) == repr(ref)


@pytest.mark.parametrize("cls", EMPTY)
def test_calculate_qparams_raises_as_torch(torch_ref: Any, cls: Any) -> None:
    message = f"calculate_qparams should not be called for {cls.__name__}"
    with pytest.raises(Exception, match=message):
        getattr(_tobs(), cls.__name__)().calculate_qparams()
    with pytest.raises(RuntimeError, match=message):
        cls().calculate_qparams()


# -- recording -------------------------------------------------------------------------


def test_recording_matches_torch(backend: Any, torch_ref: Any) -> None:
    ours, ref = RecordingObserver(), _tobs().RecordingObserver()
    data = [np.asarray([-1.5, 0.25], dtype=np.float32), np.arange(6, dtype=np.float32)]
    for a in data:
        ours(backend.from_numpy(a))
        ref(torch_ref.from_numpy(a))
    assert ours.get_tensor_value() is ours.tensor_val
    assert len(ours.tensor_val) == len(ref.tensor_val) == 2
    for got, want in zip(ours.tensor_val, ref.get_tensor_value(), strict=True):
        _assert_array_matches(got, want, backend)


def test_recording_keeps_copies(torch_ref: Any) -> None:
    x = np.ones(3, dtype=np.float32)
    obs = RecordingObserver()
    obs(x)
    x[...] = 5.0
    t = torch_ref.ones(3)
    ref = _tobs().RecordingObserver()
    ref(t)
    t.fill_(5.0)
    assert to_host(obs.tensor_val[0]).tobytes() == ref.tensor_val[0].numpy().tobytes()


def test_recording_keeps_no_autograd_graph(torch_ref: Any) -> None:
    x = torch_ref.ones(3, requires_grad=True) * 2
    obs = RecordingObserver()
    assert obs(x) is x
    recorded = obs.tensor_val[0]
    assert not recorded.requires_grad
    assert recorded.grad_fn is None
    assert torch_ref.equal(recorded, x.detach())


def test_recording_refuses_what_is_not_an_array() -> None:
    obs = RecordingObserver()
    with pytest.raises(TypeError, match="records arrays, got list"):
        obs([1.0, 2.0])
    assert obs.tensor_val == []


# -- state_dict ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_matches_torch(backend: Any, torch_ref: Any, cls: Any) -> None:
    if cls is FixedQParamsObserver:
        ours, ref = _fixed(backend, 0.3, 9), _tobs().FixedQParamsObserver(0.3, 9)
    else:
        ours, ref = cls(), getattr(_tobs(), cls.__name__)()
    got, want = ours.state_dict(), ref.state_dict()
    assert isinstance(got, OrderedDict)
    assert list(got) == list(want)
    assert got._metadata == want._metadata
    for key in got:
        _assert_array_matches(got[key], want[key], backend)


def test_state_dict_returns_copies() -> None:
    obs = FixedQParamsObserver(0.5, 2)
    sd = obs.state_dict()
    sd["scale"][...] = 9.0
    assert float(obs.scale[0]) == 0.5


@pytest.mark.parametrize("as_arrays", [True, False], ids=["backend arrays", "torch tensors"])
def test_loads_a_torch_state_dict(backend: Any, torch_ref: Any, as_arrays: bool) -> None:
    ref = _tobs().FixedQParamsObserver(0.1, 0)
    ref.load_state_dict(
        {
            "scale": torch_ref.tensor([0.375]),
            "zero_point": torch_ref.tensor([-17], dtype=torch_ref.int32),
        }
    )
    sd = ref.state_dict()
    if as_arrays:
        sd = OrderedDict((k, backend.from_torch(v)) for k, v in sd.items())
    ours = _fixed(backend, 1.0, 1)
    keys = ours.load_state_dict(sd)
    assert (keys.missing_keys, keys.unexpected_keys) == ([], [])
    for got, want in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        _assert_array_matches(got, want, backend)


def test_torch_loads_ours(backend: Any, torch_ref: Any) -> None:
    ours = _fixed(backend, 0.0625, 77)
    ref = _tobs().FixedQParamsObserver(1.0, 1)
    host = {k: np.array(to_host(v)) for k, v in ours.state_dict().items()}
    ref.load_state_dict({k: torch_ref.asarray(v) for k, v in host.items()})
    for got, want in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        _assert_array_matches(got, want, backend)


@pytest.mark.parametrize("cls", EMPTY)
def test_empty_state_dicts_load_both_ways(torch_ref: Any, cls: Any) -> None:
    ours, ref = cls(), getattr(_tobs(), cls.__name__)()
    want = ref.load_state_dict(ours.state_dict())
    got = ours.load_state_dict(ref.state_dict())
    assert (got.missing_keys, got.unexpected_keys) == (want.missing_keys, want.unexpected_keys)


def test_loading_a_wider_scale_rounds_as_torch(backend: Any, torch_ref: Any) -> None:
    value = np.asarray([0.1], dtype=np.float64)
    ref = _tobs().FixedQParamsObserver(1.0, 1)
    ref.load_state_dict({"scale": torch_ref.from_numpy(value), "zero_point": torch_ref.tensor([3])})
    ours = _fixed(backend, 1.0, 1)
    ours.load_state_dict({"scale": value, "zero_point": np.asarray([3], dtype=np.int64)})
    for got, want in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
        _assert_array_matches(got, want, backend)


def test_loading_keeps_no_autograd_graph(torch_ref: Any) -> None:
    obs = FixedQParamsObserver(1.0, 1, xp=torch_ref)
    scale = torch_ref.tensor([0.5], requires_grad=True) * 1
    obs.load_state_dict({"scale": scale, "zero_point": torch_ref.tensor([2])}, strict=True)
    assert not obs.scale.requires_grad
    assert obs.scale.grad_fn is None


NON_STRICT = [
    {},
    {"scale": np.asarray([0.25], dtype=np.float32)},
    {"zero_point": np.asarray([4], dtype=np.int32)},
    {"extra": np.asarray([1.0], dtype=np.float32)},
    {
        "scale": np.asarray([0.25], dtype=np.float32),
        "zero_point": np.asarray([4], dtype=np.int32),
        "obs.scale": np.asarray([1.0], dtype=np.float32),
    },
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("entries", NON_STRICT, ids=lambda d: "+".join(d) or "empty")
def test_non_strict_load_matches_torch(
    backend: Any, torch_ref: Any, cls: Any, entries: dict[str, Any]
) -> None:
    if cls is FixedQParamsObserver:
        ours, ref = _fixed(backend, 0.5, 1), _tobs().FixedQParamsObserver(0.5, 1)
    else:
        ours, ref = cls(), getattr(_tobs(), cls.__name__)()
    got = ours.load_state_dict(entries, strict=False)
    want = ref.load_state_dict({k: torch_ref.from_numpy(v) for k, v in entries.items()}, False)
    assert (got.missing_keys, got.unexpected_keys) == (want.missing_keys, want.unexpected_keys)
    if cls is FixedQParamsObserver:
        for a, b in zip(ours.calculate_qparams(), ref.calculate_qparams(), strict=True):
            _assert_array_matches(a, b, backend)
    if entries and set(entries) != set(ours.state_dict()):
        with pytest.raises(KeyError, match="malformed state_dict"):
            ours.load_state_dict(entries)
        with pytest.raises(RuntimeError):
            ref.load_state_dict({k: torch_ref.from_numpy(v) for k, v in entries.items()})


GOOD_SCALE = np.asarray([0.25], dtype=np.float32)
GOOD_ZP = np.asarray([4], dtype=np.int32)
# (scale, zero_point, our exception, fragment, torch refuses it too)
BAD_LOADS = [
    (np.float32(0.25), GOOD_ZP, ValueError, "shape", True),
    (np.asarray([0.25, 0.5], dtype=np.float32), GOOD_ZP, ValueError, "shape", True),
    (GOOD_SCALE, np.asarray([[4]], dtype=np.int32), ValueError, "shape", True),
    (GOOD_SCALE, np.asarray([4.0], dtype=np.float32), TypeError, "integer dtype", False),
    (GOOD_SCALE, np.asarray([2**40], dtype=np.int64), ValueError, "int32", False),
    (GOOD_SCALE, np.asarray([True]), TypeError, "integer dtype", False),
    (np.asarray([True]), GOOD_ZP, TypeError, "real dtype", False),
    ("0.25", GOOD_ZP, TypeError, "real dtype", False),
    (object(), GOOD_ZP, TypeError, "real dtype", False),
    (GOOD_SCALE, None, TypeError, "integer dtype", False),
]


@pytest.mark.parametrize(("scale", "zero_point", "exc", "fragment", "torch_refuses"), BAD_LOADS)
def test_bad_loads_change_nothing(
    backend: Any,
    torch_ref: Any,
    scale: Any,
    zero_point: Any,
    exc: type,
    fragment: str,
    torch_refuses: bool,
) -> None:
    obs = _fixed(backend, 0.5, 1)
    before = _qparams_bytes(obs)
    with pytest.raises(exc, match=fragment):
        obs.load_state_dict({"scale": scale, "zero_point": zero_point})
    assert _qparams_bytes(obs) == before
    if torch_refuses:
        with pytest.raises(RuntimeError, match="size mismatch"):
            _tobs().FixedQParamsObserver(0.5, 1).load_state_dict(
                {"scale": torch_ref.asarray(scale), "zero_point": torch_ref.asarray(zero_point)}
            )


@pytest.mark.parametrize("cls", CLASSES)
def test_a_non_mapping_is_refused(cls: Any) -> None:
    obs = FixedQParamsObserver(0.5, 1) if cls is FixedQParamsObserver else cls()
    with pytest.raises(TypeError, match="state_dict must be a mapping, got list"):
        obs.load_state_dict([("scale", 1.0)])  # type: ignore[arg-type]


# -- factories, copies, threads --------------------------------------------------------


def test_with_args(backend: Any) -> None:
    factory = FixedQParamsObserver.with_args(scale=0.5).with_args(
        zero_point=3, xp=backend.xp, device=backend.device
    )
    a, b = factory(), factory()
    assert a is not b
    assert _qparams_bytes(a) == _qparams_bytes(_fixed(backend, 0.5, 3))
    made = iter([1, 2])
    counting = factory.with_callable_args(zero_point=lambda: next(made))
    assert [int(to_host(counting().zero_point)[0]) for _ in range(2)] == [1, 2]
    assert int(to_host(counting(zero_point=9).zero_point)[0]) == 9


@pytest.mark.parametrize("cls", EMPTY)
def test_with_args_of_the_others(torch_ref: Any, cls: Any) -> None:
    kw = {} if cls is ReuseInputObserver else {"dtype": "qint8"}
    ours = cls.with_args(**kw)()
    ref = getattr(_tobs(), cls.__name__).with_args(**_torch_kwargs(torch_ref, kw))()
    assert _attributes(ours) == _attributes(ref)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_fixed_copies_and_pickles(backend: Any, how: str) -> None:
    clone = copy.deepcopy if how == "deepcopy" else (lambda o: pickle.loads(pickle.dumps(o)))
    obs = _fixed(backend, 0.125, 5, dtype="qint8", quant_min=-128, quant_max=127)
    twin = clone(obs)
    assert _attributes(twin) == _attributes(obs)
    assert twin.xp is backend.xp
    assert twin.device == backend.device
    assert _qparams_bytes(twin) == _qparams_bytes(obs)
    twin.load_state_dict({"scale": np.asarray([2.0]), "zero_point": np.asarray([0])})
    assert _qparams_bytes(obs) == _qparams_bytes(_fixed(backend, 0.125, 5))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_recording_copies_and_pickles(backend: Any, how: str) -> None:
    clone = copy.deepcopy if how == "deepcopy" else (lambda o: pickle.loads(pickle.dumps(o)))
    obs = RecordingObserver(dtype="qint8")
    obs(backend.from_numpy(np.asarray([1.0, -2.0], dtype=np.float32)))
    twin = clone(obs)
    assert twin.dtype == "qint8"
    assert len(twin.tensor_val) == 1
    assert to_host(twin.tensor_val[0]).tobytes() == to_host(obs.tensor_val[0]).tobytes()
    twin(backend.from_numpy(np.zeros(1, dtype=np.float32)))
    assert len(obs.tensor_val) == 1


@pytest.mark.parametrize("cls", [PlaceholderObserver, NoopObserver, ReuseInputObserver])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_the_others_copy_and_pickle(cls: Any, how: str) -> None:
    clone = copy.deepcopy if how == "deepcopy" else (lambda o: pickle.loads(pickle.dumps(o)))
    obs = cls()
    twin = clone(obs)
    assert type(twin) is cls
    assert _attributes(twin) == _attributes(obs)
    assert repr(twin) == repr(obs)


def test_recording_from_threads() -> None:
    obs = RecordingObserver()
    x = np.zeros(2, dtype=np.float32)

    def work() -> None:
        for _ in range(200):
            obs(x)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(obs.tensor_val) == 1600


def test_fixed_qparams_from_threads() -> None:
    """A reader sees either loaded pair, never half of each."""
    obs = FixedQParamsObserver(0.5, 1)
    pairs = [
        {"scale": np.asarray([0.5], dtype=np.float32), "zero_point": np.asarray([1])},
        {"scale": np.asarray([0.25], dtype=np.float32), "zero_point": np.asarray([2])},
    ]
    allowed = {(0.5, 1), (0.25, 2)}
    seen: set[tuple[float, int]] = set()
    stop = threading.Event()

    def load() -> None:
        for i in range(2000):
            obs.load_state_dict(pairs[i % 2])
        stop.set()

    def read() -> None:
        while not stop.is_set():
            scale, zero_point = obs.calculate_qparams()
            seen.add((float(scale[0]), int(zero_point[0])))

    threads = [threading.Thread(target=load), *(threading.Thread(target=read) for _ in range(3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen <= allowed


def test_docstring_examples(monkeypatch: pytest.MonkeyPatch) -> None:
    # The examples import from the package, which may not export these names yet.
    for name in _simple.__all__:
        monkeypatch.setattr(arrayobs, name, getattr(_simple, name), raising=False)
    result = doctest.testmod(_simple, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
