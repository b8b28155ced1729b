"""Reliability: copies and pickles, no autograd graph, torch.ao's input dtypes, ranges beyond
int32, torch's API corners, masked arrays, clear errors and threads; each against torch.ao."""

from __future__ import annotations

import copy
import pickle
import threading
from typing import Any

import numpy as np
import pytest

from arrayobs import (
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
)
from arrayobs._compat import to_host
from arrayobs.testing import assert_observers_match

CLASSES = {
    "minmax": (MinMaxObserver, {}),
    "moving_average": (MovingAverageMinMaxObserver, {"averaging_constant": 0.25}),
    "per_channel": (PerChannelMinMaxObserver, {"ch_axis": 1}),
    "per_channel_moving_average": (
        MovingAveragePerChannelMinMaxObserver,
        {"averaging_constant": 0.25, "ch_axis": 1},
    ),
}
RNG = np.random.default_rng(12)
BATCHES = [RNG.standard_normal((4, 3)).astype(np.float32) * s for s in (1.0, 3.0, 0.5, 2.0)]


def _make(kind: str, backend: Any = None, **kw: Any) -> Any:
    cls, args = CLASSES[kind]
    where = {} if backend is None else {"xp": backend.xp, "device": backend.device}
    return cls(**args, **kw, **where)


def _torch_observer(torch: Any, kind: str) -> Any:
    from torch.ao.quantization import observer as tobs

    cls, args = CLASSES[kind]
    return getattr(tobs, cls.__name__)(**args)


def _host_state(obs: Any) -> list[bytes]:
    return [np.asarray(to_host(v), np.float32).tobytes() for v in (obs.min_val, obs.max_val)]


# -- 1. copy.deepcopy and pickle ------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_observe_as_the_original(backend: Any, torch_ref: Any, kind: str, how: str) -> None:
    """A copy, bound or not, goes on exactly as the original would; the original stays."""
    clone = copy.deepcopy if how == "deepcopy" else (lambda o: pickle.loads(pickle.dumps(o)))
    unbound = _make(kind)
    assert clone(unbound).xp is None
    obs, ref = _make(kind, backend), _torch_observer(torch_ref, kind)
    for x in BATCHES[:2]:
        obs(backend.from_numpy(x))
        ref(torch_ref.from_numpy(x))
    before = _host_state(obs)
    twin = clone(obs)
    assert twin is not obs and twin.xp is obs.xp and twin.device == obs.device
    assert _host_state(twin) == before
    for x in BATCHES[2:]:
        twin(backend.from_numpy(x))
        ref(torch_ref.from_numpy(x))
    assert _host_state(obs) == before, "observing through the copy changed the original"
    assert_observers_match(twin, ref, xp=backend.xp, device=backend.device, where=how)
    for x in BATCHES[2:]:
        obs(backend.from_numpy(x))
    assert _host_state(obs) == _host_state(twin)


def test_copies_inside_a_torch_module(torch_ref: Any) -> None:
    """torch's prepare and checkpointing deep-copy and pickle whole models."""
    model = torch_ref.nn.Module()
    model.obs = MovingAverageMinMaxObserver(0.5)
    model.obs(np.asarray([-1.0, 2.0], np.float32))
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert _host_state(twin.obs) == _host_state(model.obs)
        twin.obs(np.asarray([3.0], np.float32))
        assert float(to_host(model.obs.max_val)) == 2.0


def test_a_process_group_is_shared_by_copies_and_not_pickled(torch_ref: Any) -> None:
    import torch.distributed as dist

    group = dist.ProcessGroup(dist.HashStore(), 0, 1)
    obs = MinMaxObserver(process_group=group)
    assert copy.deepcopy(obs)._group is group
    with pytest.raises(TypeError, match="process_group cannot be pickled"):
        pickle.dumps(obs)


# -- 2. no autograd graph ----------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
@pytest.mark.parametrize("fast", [True, False])
def test_no_autograd_graph(backend: Any, torch_ref: Any, kind: str, fast: bool) -> None:
    if backend.library != "torch":
        pytest.skip("autograd is torch's")
    obs = _make(kind, backend, fast=fast)
    for x in BATCHES:
        obs(torch_ref.nn.Parameter(torch_ref.from_numpy(x).to(backend.device)))
    tensors = [obs.min_val, obs.max_val, *obs.calculate_qparams(), *obs.state_dict().values()]
    for t in tensors:
        assert not t.requires_grad and t.grad_fn is None


# -- 3. every dtype torch.ao observes --------------------------------------------------
TORCH_WIDENED = ("uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2")
TORCH_WIDENED += ("float8_e4m3fnuz", "float8_e5m2fnuz")
# Values each of these dtypes holds exactly (uint32 rounds to float32 in both).
INTEGERS = np.asarray([[0, 16777217, 7], [4294967295, 3, 65535]], np.float64)
SMALL_FLOATS = np.asarray([[0.5, -3.0, 1.5], [-0.125, 2.0, 6.0]], np.float64)


@pytest.mark.parametrize("dtype", TORCH_WIDENED)
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_torch_dtypes_that_torch_ao_widens(
    backend: Any, torch_ref: Any, dtype: str, kind: str
) -> None:
    """torch.ao casts every input to float32; torch has no min/max kernel for these."""
    if backend.library != "torch":
        pytest.skip("torch's dtypes")
    torch = torch_ref
    values = SMALL_FLOATS if dtype.startswith("float8") else INTEGERS
    if dtype == "uint16":
        values = np.minimum(values, 65535)
    t = torch.from_numpy(values).to(getattr(torch, dtype))
    obs, ref = _make(kind, backend), _torch_observer(torch, kind)
    for x in (t, t.flip(0)):
        obs(x.to(backend.device))
        ref(x)
    assert_observers_match(obs, ref, xp=backend.xp, device=backend.device, where=dtype)


ML_DTYPES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "int4")


@pytest.mark.parametrize("dtype", ML_DTYPES)
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_narrow_dtypes_of_numpy_and_jax(
    backend: Any, torch_ref: Any, dtype: str, kind: str
) -> None:
    """ml_dtypes' float8 and int4 (NumPy, Dask) and JAX's: the same numbers as torch.ao on
    the same values (exact in float32)."""
    if backend.library not in ("numpy", "jax", "dask"):
        pytest.skip(f"{backend.library} has no {dtype}")
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = SMALL_FLOATS if dtype.startswith("float8") else np.asarray([[-8, 7, 0], [3, -1, 2]])
    host = values.astype(np.float32).astype(getattr(ml_dtypes, dtype))
    obs, ref = _make(kind, backend), _torch_observer(torch_ref, kind)
    for h in (host, host[::-1]):
        if backend.library == "jax":
            x = backend.xp.asarray(h)
        elif backend.library == "dask":
            x = backend.xp.asarray(np.ascontiguousarray(h))
        else:
            x = np.ascontiguousarray(h)
        obs(x)
        ref(torch_ref.from_numpy(np.ascontiguousarray(h).astype(np.float32)))
    assert_observers_match(obs, ref, xp=backend.xp, device=backend.device, where=dtype)


# -- 5. quantization ranges beyond int32 ---------------------------------------------------
@pytest.mark.parametrize(
    ("dtype", "qmin", "qmax"),
    [
        ("uint8", 0, 2**32),
        ("quint8", -(2**33), 10),
        ("int16", 0, 2**40),
        ("uint16", -(2**31) - 1, 0),
    ],
)
def test_affine_ranges_beyond_int32_raise_as_torch(
    backend: Any, torch_ref: Any, dtype: str, qmin: int, qmax: int
) -> None:
    from torch.ao.quantization import observer as tobs

    x = np.asarray([[-1.0, 2.0]], np.float32)  # one channel along axis 0
    for per_channel in (False, True):
        kw = {"dtype": dtype, "quant_min": qmin, "quant_max": qmax}
        cls = PerChannelMinMaxObserver if per_channel else MinMaxObserver
        ref = getattr(tobs, cls.__name__)(**{**kw, "dtype": getattr(torch_ref, dtype)})
        ref(torch_ref.from_numpy(x))
        with pytest.raises(RuntimeError, match="overflow"):
            ref.calculate_qparams()
        obs = cls(**kw, xp=backend.xp, device=backend.device)
        obs(backend.from_numpy(x))
        before = _host_state(obs)
        with pytest.raises(ValueError, match="does not fit int32"):
            obs.calculate_qparams()
        assert _host_state(obs) == before


def test_symmetric_ranges_beyond_int32_match_torch(backend: Any, torch_ref: Any) -> None:
    """torch computes these (an int64 zero point); without int64 arrayobs refuses."""
    from torch.ao.quantization import observer as tobs

    kw = {"dtype": "quint8", "qscheme": "per_tensor_symmetric", "quant_min": 0, "quant_max": 2**32}
    x = np.asarray([-1.0, 2.0], np.float32)
    ref = tobs.MinMaxObserver(
        **{**kw, "dtype": torch_ref.quint8, "qscheme": torch_ref.per_tensor_symmetric}
    )
    ref(torch_ref.from_numpy(x))
    obs = MinMaxObserver(**kw, xp=backend.xp, device=backend.device)
    obs(backend.from_numpy(x))
    if backend.has("int64"):
        assert_observers_match(obs, ref, xp=backend.xp, device=backend.device)
    else:
        with pytest.raises(ValueError, match="does not fit int32"):
            obs.calculate_qparams()


# -- 6. torch's API corners --------------------------------------------------------------
def test_factory_kwargs(torch_ref: Any) -> None:
    from torch.ao.quantization import observer as tobs

    kw = {"device": "cpu", "dtype": torch_ref.float32}
    for kind in sorted(CLASSES):
        cls, args = CLASSES[kind]
        obs = cls(**args, factory_kwargs=kw)
        assert obs.xp is not None and obs.device == torch_ref.device("cpu")
        ref = getattr(tobs, cls.__name__)(**args, factory_kwargs=kw)
        x = torch_ref.from_numpy(BATCHES[0])
        obs(x)
        ref(x)
        assert_observers_match(obs, ref, xp=obs.xp, device=obs.device, where=kind)
    # torch's positional order: factory_kwargs comes before eps.
    positional = MinMaxObserver("quint8", "per_tensor_affine", False, None, None, None, 0.5)
    assert positional.config.eps == 0.5
    with pytest.raises(NotImplementedError, match="float32"):
        MinMaxObserver(factory_kwargs={"dtype": torch_ref.float64})
    with pytest.raises(TypeError, match="unexpected keys"):
        MinMaxObserver(factory_kwargs={"memory_format": None})
    with pytest.raises(ValueError, match="disagree"):
        MinMaxObserver(xp=torch_ref, device="cpu", factory_kwargs={"device": "meta"})


def test_torch_keyword_names(torch_ref: Any) -> None:
    x = np.asarray([[1.0, -2.0], [0.5, 4.0]], np.float32)
    for kind in sorted(CLASSES):
        obs = _make(kind)
        assert obs.forward(x_orig=x) is x
    obs = PerChannelMinMaxObserver(ch_axis=np.int64(1))
    obs(x)
    assert obs.ch_axis == 1 and type(obs.ch_axis) is int
    assert PerChannelMinMaxObserver(ch_axis=torch_ref.tensor(-1)).ch_axis == -1
    for bad in (1.0, True, "1"):
        with pytest.raises(TypeError, match="ch_axis"):
            PerChannelMinMaxObserver(ch_axis=bad)


@pytest.mark.parametrize(
    "extra",
    # (Dropping min_val alone would leave (inf, max): a crossed state, refused at load.)
    [{"extra": np.float32(1)}, {"drop": "eps"}, {"prefix": "obs."}],
    ids=["unexpected", "missing", "prefixed"],
)
def test_non_strict_load_reports_keys_as_torch(torch_ref: Any, extra: dict[str, Any]) -> None:
    from torch.ao.quantization import observer as tobs

    source = MinMaxObserver()
    source(np.asarray([-1.0, 2.0], np.float32))
    sd = source.state_dict()
    if "extra" in extra:
        sd["extra"] = extra["extra"]
    if "drop" in extra:
        del sd[extra["drop"]]
    if "prefix" in extra:
        sd = type(sd)((extra["prefix"] + k, v) for k, v in sd.items())
        sd._metadata = {"": {"version": 3}}  # type: ignore[attr-defined]
    ours = MinMaxObserver().load_state_dict(sd, strict=False)
    as_torch = type(sd)((k, torch_ref.asarray(v)) for k, v in sd.items())
    as_torch._metadata = sd._metadata  # type: ignore[attr-defined]
    want = tobs.MinMaxObserver().load_state_dict(as_torch, strict=False)
    assert (sorted(ours.missing_keys), sorted(ours.unexpected_keys)) == (
        sorted(want.missing_keys),
        sorted(want.unexpected_keys),
    )
    assert ours._fields == ("missing_keys", "unexpected_keys")


def test_zero_d_values_given_with_shape_one(backend: Any, torch_ref: Any) -> None:
    from torch.ao.quantization import observer as tobs

    sd = {"eps": np.asarray([2.0**-10], np.float32)}
    sd |= {"min_val": np.asarray([-1.0], np.float32), "max_val": np.asarray([3.0], np.float32)}
    obs = MinMaxObserver(xp=backend.xp, device=backend.device)
    obs.load_state_dict(sd)
    ref = tobs.MinMaxObserver()
    ref.load_state_dict({k: torch_ref.from_numpy(v) for k, v in sd.items()})
    assert obs.min_val.shape == ()
    assert_observers_match(obs, ref, xp=backend.xp, device=backend.device)


# -- 7. NumPy masked arrays ---------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(CLASSES))
def test_masked_arrays_are_refused(kind: str) -> None:
    from arrayobs import functional as F

    obs = _make(kind)
    obs(np.asarray([[1.0, 2.0], [3.0, 4.0]], np.float32))
    before = _host_state(obs)
    masked = np.ma.array([[1.0, 1e30], [0.0, 1.0]], mask=[[0, 1], [0, 0]], dtype=np.float32)
    with pytest.raises(TypeError, match=r"compressed\(\).*filled"):
        obs(masked)
    assert _host_state(obs) == before
    with pytest.raises(TypeError, match="masked"):
        F.batch_minmax(masked)


# -- 8. clear errors ---------------------------------------------------------------------
def test_traced_jax_values_are_refused_clearly() -> None:
    jax = pytest.importorskip("jax")
    obs = MinMaxObserver(xp=jax.numpy)
    with pytest.raises(TypeError, match=r"functional core.*jax\.jit|jax\.jit.*functional"):
        jax.jit(obs)(jax.numpy.ones(3))
    unbound = MinMaxObserver()
    with pytest.raises(TypeError, match="traced JAX value"):
        jax.jit(unbound)(jax.numpy.ones(3))
    assert unbound.xp is None


def test_a_device_of_another_library_is_a_clear_error() -> None:
    jnp = pytest.importorskip("jax.numpy")
    with pytest.raises(ValueError, match=r"not a device of jax.*devices here"):
        MinMaxObserver(xp=jnp, device="cpu")


# -- 9. threads -------------------------------------------------------------------------
def _race(obs: Any, per_thread: list[list[Any]]) -> list[BaseException]:
    start = threading.Barrier(len(per_thread))
    errors: list[BaseException] = []

    def run(batches: list[Any]) -> None:
        start.wait()
        for x in batches:
            try:
                obs(x)
            except BaseException as exc:  # collected, then checked by the caller
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.mark.parametrize("kind", ["minmax", "per_channel"])
def test_threads_lose_no_update(backend: Any, kind: str) -> None:
    """8 threads on one observer: the state is the min and max over every batch.

    The first batch of thread 0 holds the extremes; without the lock another thread's
    update, computed from the state it read before, overwrote it (6 to 25 of 25 trials).
    """
    if backend.library in ("dask", "array_api_strict"):
        pytest.skip(f"{backend.library}: a race needs a reduction that releases the GIL")
    rng = np.random.default_rng(9)
    n = 200_000
    for trial in range(5):
        per_thread = [
            [rng.uniform(-1.0, 1.0, (n // 4, 4)).astype(np.float32) for _ in range(6)]
            for _ in range(8)
        ]
        per_thread[0][0][0, :] = [-50.0 - trial, 50.0 + trial, -7.0, 7.0]
        obs = _make(kind, backend)
        converted = [[backend.from_numpy(x) for x in batches] for batches in per_thread]
        assert _race(obs, converted) == []
        everything = np.concatenate([x for batches in per_thread for x in batches])
        axis = None if kind == "minmax" else 0
        want = (everything.min(axis=axis), everything.max(axis=axis))
        got = (to_host(obs.min_val), to_host(obs.max_val))
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]), trial


def test_racing_first_batches_bind_once(torch_ref: Any) -> None:
    """A NumPy batch and a torch batch on an unbound observer: one binds, the other is
    refused as any array of another library is, and the state is the binder's."""
    for _ in range(20):
        obs = MinMaxObserver()
        a, b = np.asarray([-3.0, 1.0], np.float32), torch_ref.tensor([5.0, 6.0])
        errors = _race(obs, [[a], [b]])
        assert len(errors) == 1 and isinstance(errors[0], TypeError), errors
        assert "bound to" in str(errors[0])
        want = (-3.0, 1.0) if obs.xp.__name__.endswith("numpy") else (5.0, 6.0)
        assert (float(to_host(obs.min_val)), float(to_host(obs.max_val))) == want
