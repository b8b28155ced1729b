"""state_dict round trips, torch interop both ways, and malformed input that changes nothing."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pytest

from arrayobs import MinMaxObserver, MovingAverageMinMaxObserver
from arrayobs._compat import array_namespace, device_of, to_host
from arrayobs.testing import assert_qparams_match, assert_state_match
from tests.test_observer_api import _same, _snapshot

CLASSES = [MinMaxObserver, MovingAverageMinMaxObserver]
DATA = [np.asarray([-1.5, 0.25, 3.0], dtype=np.float32), np.asarray([-4.0, 2.0], dtype=np.float32)]


def _torch_pair(torch: Any, cls: Any, backend: Any, **kw: Any) -> tuple[Any, Any]:
    from torch.ao.quantization import observer as tobs

    tkw = {k: getattr(torch, v) if k in ("dtype", "qscheme") else v for k, v in kw.items()}
    return cls(**kw, xp=backend.xp, device=backend.device), getattr(tobs, cls.__name__)(**tkw)


@pytest.mark.parametrize("cls", CLASSES)
def test_state_dict_layout_matches_torch(backend: Any, torch_ref: Any, cls: Any) -> None:
    ours, ref = _torch_pair(torch_ref, cls, backend, eps=2.0**-12)
    for x in DATA:
        ours(backend.from_numpy(x))
        ref(torch_ref.from_numpy(x))
    got, want = ours.state_dict(), ref.state_dict()
    assert list(got) == list(want) == ["eps", "min_val", "max_val"]
    assert got._metadata[""]["version"] == want._metadata[""]["version"] == 3
    for key in got:
        assert array_namespace(got[key]) is backend.xp
        assert got[key].dtype == backend.xp.float32
        assert device_of(got[key]) == backend.device
        assert tuple(got[key].shape) == tuple(want[key].shape)
        assert to_host(got[key]).tobytes() == want[key].numpy().tobytes(), key


@pytest.mark.parametrize("cls", CLASSES)
def test_round_trip_within_backend(backend: Any, cls: Any) -> None:
    src = cls(qscheme="per_tensor_symmetric", eps=1e-3, xp=backend.xp, device=backend.device)
    src(backend.from_numpy(DATA[0]))
    dst = cls(qscheme="per_tensor_symmetric", xp=backend.xp, device=backend.device)
    dst.load_state_dict(src.state_dict())
    assert _same(_snapshot(src), _snapshot(dst))
    for a, b in zip(src.calculate_qparams(), dst.calculate_qparams(), strict=True):
        assert to_host(a).tobytes() == to_host(b).tobytes()


def test_state_dict_returns_copies(backend: Any) -> None:
    obs = MinMaxObserver(xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(DATA[0]))
    sd = obs.state_dict()
    if backend.library == "numpy":
        sd["min_val"][...] = 100.0
    assert float(to_host(obs.min_val)) == -1.5


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("qscheme", ["per_tensor_affine", "per_tensor_symmetric"])
def test_loads_a_torch_state_dict(backend: Any, torch_ref: Any, cls: Any, qscheme: str) -> None:
    ours, ref = _torch_pair(torch_ref, cls, backend, qscheme=qscheme, dtype="qint8")
    ref.eps.fill_(2.0**-9)
    for x in DATA:
        ref(torch_ref.from_numpy(x))
    ours.load_state_dict(ref.state_dict())
    assert_state_match(ours, ref, xp=backend.xp, device=backend.device, where="loaded")
    assert_qparams_match(
        ours.calculate_qparams(), ref.calculate_qparams(), xp=backend.xp, device=backend.device
    )
    # The loaded state goes on updating as torch's does.
    ours(backend.from_numpy(DATA[0] * 3))
    ref(torch_ref.from_numpy(DATA[0] * 3))
    assert_state_match(ours, ref, xp=backend.xp, device=backend.device, where="after load")


@pytest.mark.parametrize("cls", CLASSES)
def test_torch_loads_what_arrayobs_saves(backend: Any, torch_ref: Any, cls: Any) -> None:
    ours, ref = _torch_pair(torch_ref, cls, backend, qscheme="per_tensor_affine", eps=0.5)
    ref_fresh = type(ref)()
    for x in DATA:
        ours(backend.from_numpy(x))
        ref(torch_ref.from_numpy(x))
    saved = ours.state_dict()
    converted = OrderedDict((k, torch_ref.asarray(np.array(to_host(v)))) for k, v in saved.items())
    converted._metadata = saved._metadata  # type: ignore[attr-defined]
    ref_fresh.load_state_dict(converted)
    assert float(ref_fresh.eps[0]) == 0.5
    assert_qparams_match(
        ours.calculate_qparams(), ref.calculate_qparams(), xp=backend.xp, device=backend.device
    )
    # torch loaded our state: the same qparams as the torch observer that saw the data.
    assert (
        ref_fresh.calculate_qparams()[0].numpy().tobytes()
        == ref.calculate_qparams()[0].numpy().tobytes()
    )


def test_loads_other_libraries_and_numbers(backend: Any) -> None:
    obs = MinMaxObserver(xp=backend.xp, device=backend.device)
    obs.load_state_dict({"eps": np.asarray([2.0**-20]), "min_val": np.float64(-2.0), "max_val": 3})
    assert float(to_host(obs.min_val)) == -2.0 and float(to_host(obs.max_val)) == 3.0
    assert float(to_host(obs.eps)[0]) == 2.0**-20
    assert array_namespace(obs.min_val) is backend.xp and device_of(obs.min_val) == backend.device


def test_version_1_state_dict_gets_default_eps() -> None:
    obs = MinMaxObserver(eps=0.25)
    old = OrderedDict(min_val=np.float32(-1.0), max_val=np.float32(1.0))
    old._metadata = {"": {"version": 1}}  # type: ignore[attr-defined]
    obs.load_state_dict(old)
    assert float(obs.eps[0]) == float(np.finfo(np.float32).eps)


def test_fresh_state_dict_means_never_observed() -> None:
    obs = MinMaxObserver()
    obs(np.asarray([1.0, 2.0], dtype=np.float32))
    obs.load_state_dict(MinMaxObserver().state_dict())
    with pytest.warns(UserWarning, match="must run observer"):
        obs.calculate_qparams()


def test_non_strict_load_keeps_missing_values() -> None:
    obs = MinMaxObserver(eps=0.125)
    obs.load_state_dict({"min_val": -1.0, "max_val": 1.0, "other": 0}, strict=False)
    assert float(obs.eps[0]) == 0.125 and float(obs.min_val) == -1.0


GOOD = {
    "eps": np.asarray([1e-3], np.float32),
    "min_val": np.float32(-1.0),
    "max_val": np.float32(1.0),
}
MALFORMED = [
    (
        {"min_val": GOOD["min_val"], "max_val": GOOD["max_val"]},
        KeyError,
        "missing keys \\['eps'\\]",
    ),
    ({**GOOD, "histogram": np.zeros(3)}, KeyError, "unexpected keys \\['histogram'\\]"),
    ({**GOOD, "min_val": np.zeros(2, np.float32)}, ValueError, "shape \\(\\)"),
    ({**GOOD, "min_val": np.zeros((1, 1), np.float32)}, ValueError, "shape \\(\\)"),
    ({**GOOD, "eps": np.float32(1e-3)}, ValueError, "shape \\(1,\\)"),
    ({**GOOD, "min_val": np.float32(2.0)}, ValueError, "greater than max_val"),
    ({**GOOD, "max_val": "1.0"}, TypeError, "real dtype"),
    ({**GOOD, "max_val": object()}, TypeError, "max_val"),
    ({**GOOD, "max_val": np.complex64(1.0)}, TypeError, "real dtype"),
    ({**GOOD, "eps": np.asarray([np.nan])}, ValueError, "NaN"),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(("state_dict", "exc", "fragment"), MALFORMED)
def test_malformed_state_dict_changes_nothing(
    backend: Any, cls: Any, state_dict: dict[str, Any], exc: type, fragment: str
) -> None:
    obs = cls(xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(DATA[0]))
    before = _snapshot(obs)
    with pytest.raises(exc, match=fragment):
        obs.load_state_dict(state_dict)
    assert _same(before, _snapshot(obs))


def test_load_refuses_non_mapping() -> None:
    with pytest.raises(TypeError, match="mapping"):
        MinMaxObserver().load_state_dict([("eps", 1.0)])  # type: ignore[arg-type]
