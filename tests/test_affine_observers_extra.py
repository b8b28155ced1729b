"""torchao 0.18.0's AffineQuantizedFixedQParamObserver and AffineQuantizedMSEObserver,
against the live classes on every backend: min and max bits, scales and zero
points, dtypes and shapes; refusals, state unchanged on error, copies,
pickles, state_dict and no autograd graph.
"""

from __future__ import annotations

import copy
import pickle
import threading
import warnings
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from arrayobs import affine
from tests.test_affine import TORCH_DTYPES, _data, _host, _match, _require, _to

pytest.importorskip("torchao")
torch = pytest.importorskip("torch")
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchao.quantization import granularity as tg
    from torchao.quantization import observer as tob
    from torchao.quantization import quant_primitives as tq

A = affine.MappingType
HOST = SimpleNamespace(name="host")  # the backend named in a mismatch message


def _tg(g: Any) -> Any:
    fields = {k: getattr(g, k) for k in g.__dataclass_fields__}
    return getattr(tg, type(g).__name__)(**fields)


def _torch_kw(kw: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in kw.items():
        if k.endswith("_dtype") and v is not None:
            out[k] = TORCH_DTYPES[v]
        elif k == "zero_point_domain":
            out[k] = getattr(tq.ZeroPointDomain, v)
        else:
            out[k] = v
    return out


def _specials(x: Any) -> Any:
    """A row with a NaN, one with an infinity, one with a lone outlier."""
    x = x.clone()
    x[4, 3] = float("nan")
    x[5, 7] = float("inf")
    x[6, 1] = 1e4
    return x


# -- the MSE observer ------------------------------------------------------------------
MSE_CASES = [
    # shape, dtype, granularity, mapping, target, steps, keywords, specials
    ((8, 64), "float32", affine.PerTensor(), A.SYMMETRIC, "int8", 100, {}, False),
    ((8, 64), "float32", affine.PerAxis(0), A.ASYMMETRIC, "uint8", 100, {}, True),
    ((8, 64), "float32", affine.PerRow(), A.SYMMETRIC_NO_CLIPPING_ERR, "int8", 7, {}, False),
    ((8, 64), "float32", affine.PerGroup(16), A.ASYMMETRIC, "uint4", 100, {}, True),
    ((8, 64), "float32", affine.PerBlock((1, 32)), A.SYMMETRIC, "int4", 10, {}, False),
    ((8, 64), "float32", affine.PerBlock((8, 64)), A.ASYMMETRIC, "int8", 3, {}, False),
    ((8, 64), "float32", affine.PerBlock((2, 64)), A.SYMMETRIC, "int8", 5, {}, False),
    ((8, 64), "bfloat16", affine.PerGroup(16), A.SYMMETRIC, "int8", 50, {}, False),
    ((8, 64), "bfloat16", affine.PerTensor(), A.ASYMMETRIC, "uint8", 20, {}, False),
    ((8, 64), "float16", affine.PerRow(), A.ASYMMETRIC, "uint8", 20, {}, False),
    ((2, 4, 32), "float32", affine.PerToken(), A.ASYMMETRIC, "int8", 10, {}, False),
    # losses past torchao's starting 1e9 (bfloat16) and past float16's range (inf)
    ((8, 64), "bfloat16", affine.PerRow(), A.SYMMETRIC, "int8", 10, {"scale": 1e6}, False),
    ((8, 64), "float16", affine.PerGroup(32), A.ASYMMETRIC, "int8", 10, {"scale": 300.0}, False),
    ((4, 16384), "float32", affine.PerAxis(0), A.SYMMETRIC, "int8", 3, {}, False),
    ((127, 256), "float32", affine.PerTensor(), A.ASYMMETRIC, "uint8", 4, {}, False),
    (
        (8, 64),
        "float32",
        affine.PerGroup(32),
        A.ASYMMETRIC,
        "int8",
        12,
        {"eps": 1e-3, "scale_dtype": "bfloat16", "zero_point_dtype": "int16"},
        False,
    ),
    (
        (8, 64),
        "float32",
        affine.PerRow(),
        A.SYMMETRIC,
        "int8",
        9,
        {"quant_min": -8, "quant_max": 7, "zero_point_domain": "NONE"},
        False,
    ),
]


def _reference_mse(case: tuple[Any, ...], x: Any) -> Any:
    _, _, g, mapping, target, steps, kw, _ = case
    kw = {k: v for k, v in kw.items() if k != "scale"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = tob.AffineQuantizedMSEObserver(
            getattr(tq.MappingType, mapping.name),
            torch.int8 if target == "int4" else TORCH_DTYPES[target],
            _tg(g),
            steps=steps,
            **({"quant_min": -8, "quant_max": 7} if target == "int4" else {}),
            **_torch_kw(kw),
        )
    ref(x)
    return ref


@pytest.mark.parametrize("case", MSE_CASES, ids=[f"mse{i}" for i in range(len(MSE_CASES))])
def test_mse_matches_torchao(backend: Any, case: tuple[Any, ...]) -> None:
    shape, dtype, g, mapping, target, steps, kw, specials = case
    if backend.library in ("jax", "dask") and MSE_CASES.index(case) % 4:
        pytest.skip("sampled on JAX and Dask (every 4th case): each search is eager steps")
    _require(backend, dtype, *(v for k, v in kw.items() if k.endswith("_dtype")))
    kw = dict(kw)
    x = _data(shape, "float32", seed=len(shape) * 7 + steps) * kw.pop("scale", 1.0)
    x = x.to(TORCH_DTYPES[dtype])
    x = _specials(x) if specials else x
    ref = _reference_mse(case, x)
    want_scale, want_zp = ref.calculate_qparams()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        obs = affine.AffineQuantizedMSEObserver(mapping, target, g, steps=steps, **kw)
    xin = _to(backend, x)
    assert obs(xin) is xin
    assert obs.calibrated
    _match(obs.min_val, ref.min_val, "min_val", backend)
    _match(obs.max_val, ref.max_val, "max_val", backend)
    scale, zp = obs.calculate_qparams()
    _match(scale, want_scale, "scale", backend)
    if want_zp is None:
        assert zp is None
    else:
        _match(zp, want_zp, "zero_point", backend)


LOSS_CASES = [
    ((4, 4096), "float32", affine.PerAxis(0)),
    ((8, 2048), "float32", affine.PerGroup(256)),
    ((127, 256), "float32", affine.PerTensor()),
    ((3, 5, 1000), "float32", affine.PerToken()),
    ((16, 512), "bfloat16", affine.PerGroup(128)),
    ((16, 512), "float16", affine.PerRow()),
]


@pytest.mark.parametrize(("shape", "dtype", "g"), LOSS_CASES)
def test_mse_loss_in_atens_order(backend: Any, shape: tuple[int, ...], dtype: str, g: Any) -> None:
    """The per-block loss itself against torchao's ``mse`` (ATen's ``torch.mean``):
    long blocks, where a library's own summation order differs in the last bit."""
    from arrayobs._core import _affine_mse

    _require(backend, dtype)
    if backend.library == "dask":
        pytest.skip("the observer searches a Dask batch in NumPy; the core does not run lazily")
    expect = _data(shape, dtype, seed=31)
    pred = (expect.float() + _data(shape, "float32", seed=32) * 0.01).to(expect.dtype)
    ref = tob.AffineQuantizedMSEObserver(tq.MappingType.SYMMETRIC, torch.int8, _tg(g))
    block = affine.get_block_size(shape, g)
    want = ref.mse(pred, expect, list(block))
    got = _affine_mse.mse(_to(backend, pred), _to(backend, expect), block, xp=backend.xp)
    _match(got, want, "loss", backend)


def test_mse_public_methods_match_torchao(backend: Any) -> None:
    """torchao's ``line_search``, ``loss_fn`` and ``mse`` (its own tests call
    ``loss_fn``), bit for bit; none of them changes the observer."""
    _require(backend, "float32")
    g = affine.PerGroup(16)
    x = _data((8, 64), "float32", seed=41)
    case = ((8, 64), "float32", g, A.ASYMMETRIC, "uint8", 12, {}, False)
    ref = _reference_mse(case, x)
    obs = affine.AffineQuantizedMSEObserver(A.ASYMMETRIC, "uint8", g, steps=12)
    xin = _to(backend, x)
    lo, hi = obs.line_search(xin)
    assert not obs.calibrated
    want_lo, want_hi = ref.line_search(x)
    _match(lo, want_lo, "line_search min", backend)
    _match(hi, want_hi, "line_search max", backend)
    row_min = x.reshape(8, 4, 16).amin(-1).reshape(-1)
    for new_min, new_max in ((want_lo, want_hi), (row_min, -row_min)):
        want = ref.loss_fn(x, new_min, new_max)
        got = obs.loss_fn(xin, _to(backend, new_min), _to(backend, new_max))
        _match(got, want, "loss_fn", backend)
    block = affine.get_block_size(x.shape, g)
    pred = x * 1.5
    _match(obs.mse(_to(backend, pred), xin, block), ref.mse(pred, x, list(block)), "mse", backend)
    assert not obs.calibrated


def test_mse_second_batch_and_run_once() -> None:
    """Each batch replaces the search (torchao); ``run_once`` keeps the first."""
    first, second = _data((8, 32), "float32", 1), _data((8, 32), "float32", 2) * 3
    for run_once in (False, True):
        ref = tob.AffineQuantizedMSEObserver(
            tq.MappingType.SYMMETRIC, torch.int8, tg.PerRow(), steps=15, run_once=run_once
        )
        obs = affine.AffineQuantizedMSEObserver(
            A.SYMMETRIC, "int8", affine.PerRow(), steps=15, run_once=run_once
        )
        for b in (first, second):
            ref(b)
            obs(b)
            _match(obs.max_val, ref.max_val, f"max_val run_once={run_once}", HOST)
            _match(obs.calculate_qparams()[0], ref.calculate_qparams()[0], "scale", HOST)
        # the second batch's shape differs from the first's: replaced, not folded
        wide = _data((4, 32), "float32", 3)
        ref(wide)
        obs(wide)
        _match(obs.min_val, ref.min_val, f"min_val run_once={run_once}", HOST)


def test_mse_steps_zero_keeps_min_max() -> None:
    x = _data((4, 16), "float32", 5)
    ref = tob.AffineQuantizedMSEObserver(
        tq.MappingType.ASYMMETRIC, torch.uint8, tg.PerRow(), steps=0
    )
    ref(x)
    obs = affine.AffineQuantizedMSEObserver(A.ASYMMETRIC, "uint8", affine.PerRow(), steps=0)
    obs(x.numpy())
    _match(obs.min_val, ref.min_val, "min_val", HOST)
    _match(obs.max_val, ref.max_val, "max_val", HOST)


REFUSED = [
    ((16, 64), affine.PerAxis(1)),  # reduces the leading axis: not a contiguous run
    ((16, 64), affine.PerBlock((2, 8))),  # blocks of two strided pieces
    ((2, 3, 64), affine.PerAxis(2)),
    ((128, 256), affine.PerTensor()),  # one block of 32768: ATen splits it across threads
]


@pytest.mark.parametrize(("shape", "g"), REFUSED)
def test_mse_refuses_unreproduced_orders(shape: tuple[int, ...], g: Any) -> None:
    obs = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", g, steps=2)
    with pytest.raises(NotImplementedError, match="not reproduced"):
        obs(np.ones(shape, np.float32))
    assert not obs.calibrated
    # and torchao does compute these: a real refusal, not a shared failure
    ref = tob.AffineQuantizedMSEObserver(tq.MappingType.SYMMETRIC, torch.int8, _tg(g), steps=2)
    ref(torch.ones(shape))


def test_mse_bad_input_leaves_state(backend: Any) -> None:
    obs = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=5)
    obs(_to(backend, _data((4, 16), "float32", 9)))
    before = {k: _host(v) for k, v in obs.state_dict().items()}
    with pytest.raises(TypeError, match="observes arrays"):
        obs([1.0, 2.0])
    with pytest.raises(ValueError, match="empty"):
        obs(_to(backend, torch.zeros(0, 16)))
    with pytest.raises(NotImplementedError, match="not reproduced"):
        affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerAxis(1))(
            _to(backend, torch.ones(4, 16))
        )
    with pytest.raises(TypeError, match="float16, bfloat16 or float32"):
        obs(_to(backend, torch.ones(4, 16, dtype=torch.int32)))
    with pytest.raises(TypeError, match="bound to"):
        obs(torch.ones(4, 16) if backend.library == "numpy" else np.ones((4, 16), np.float32))
    after = obs.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert np.array_equal(v, _host(after[k]))
    with pytest.raises(ValueError, match="steps"):
        affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=-1)
    with pytest.raises(TypeError, match="steps"):
        affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=2.5)
    with pytest.raises(NotImplementedError, match="FLOAT"):
        affine.AffineQuantizedMSEObserver(
            A.SYMMETRIC, "int8", affine.PerRow(), zero_point_domain="FLOAT"
        )
    fresh = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow())
    with pytest.raises(ValueError, match="run the observer"):
        fresh.calculate_qparams()


def test_mse_one_element_blocks_refused() -> None:
    """Every block one element: torchao's qparams do not fit its input there."""
    ref = tob.AffineQuantizedMSEObserver(tq.MappingType.SYMMETRIC, torch.int8, tg.PerAxis(0))
    with pytest.raises(RuntimeError):
        ref(torch.ones(8))
    obs = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerAxis(0))
    with pytest.raises(ValueError, match="block of its own"):
        obs(np.ones(8, np.float32))
    assert not obs.calibrated


def test_mse_float64_refused_as_torchao() -> None:
    x = torch.ones(4, 16, dtype=torch.float64)
    ref = tob.AffineQuantizedMSEObserver(tq.MappingType.SYMMETRIC, torch.int8, tg.PerRow(), steps=2)
    with pytest.raises(AssertionError, match="float64"):
        ref(x)
    obs = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=2)
    with pytest.raises(TypeError, match="float64"):
        obs(x)


def test_mse_copy_pickle_state_dict(backend: Any) -> None:
    obs = affine.AffineQuantizedMSEObserver(A.ASYMMETRIC, "uint8", affine.PerGroup(8), steps=6)
    obs(_to(backend, _data((4, 32), "float32", 11)))
    nxt = _to(backend, _data((4, 32), "float32", 12) * 2)
    clones = [copy.deepcopy(obs), pickle.loads(pickle.dumps(obs))]
    loaded = affine.AffineQuantizedMSEObserver(A.ASYMMETRIC, "uint8", affine.PerGroup(8), steps=6)
    loaded.load_state_dict(obs.state_dict())
    assert loaded.calibrated
    want = [_host(v) for v in obs.calculate_qparams()]
    got = [_host(v) for v in loaded.calculate_qparams()]
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    for o in [obs, *clones]:
        o(nxt)
    want = [_host(v) for v in obs.calculate_qparams()]
    for o in clones:
        got = [_host(v) for v in o.calculate_qparams()]
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    assert type(clones[1].min_val) is type(obs.min_val)
    assert repr(obs) == "AffineQuantizedMSEObserver()"
    # run_once: a loaded state counts as the one search
    once = affine.AffineQuantizedMSEObserver(
        A.ASYMMETRIC, "uint8", affine.PerGroup(8), steps=6, run_once=True
    )
    once.load_state_dict(loaded.state_dict())
    before = _host(once.max_val)
    once(nxt)
    assert np.array_equal(_host(once.max_val), before)


def test_mse_keeps_no_graph() -> None:
    x = _data((4, 32), "float32", 13).requires_grad_(True)
    obs = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=4)
    assert obs(x) is x
    scale, zp = obs.calculate_qparams()
    for v in (obs.min_val, obs.max_val, scale, zp):
        assert not v.requires_grad and v.grad_fn is None


def test_mse_threads() -> None:
    """Concurrent forwards: the state is that of one of the batches."""
    batches = [_data((4, 16), "float32", 20 + i) * (i + 1) for i in range(6)]
    singles = []
    for b in batches:
        o = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=5)
        o(b)
        singles.append(_host(o.max_val))
    obs = affine.AffineQuantizedMSEObserver(A.SYMMETRIC, "int8", affine.PerRow(), steps=5)
    threads = [threading.Thread(target=obs, args=(b,)) for b in batches]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert any(np.array_equal(_host(obs.max_val), s) for s in singles)


# -- the fixed-qparams observer ------------------------------------------------------------
FIXED_CASES = [
    {},
    {"scale": torch.tensor([0.5])},
    {"scale": torch.tensor(0.0)},  # a zero scale becomes [1.0]
    {"scale": torch.tensor([0.0], dtype=torch.bfloat16)},
    {"scale": torch.tensor([-0.0])},
    {"scale": torch.tensor([float("nan")])},
    {
        "scale": torch.tensor([0.25], dtype=torch.float16),
        "zero_point": torch.tensor([3], dtype=torch.int32),
    },
    {
        "scale": torch.tensor([0.25], dtype=torch.float16),
        "zero_point": torch.tensor([0], dtype=torch.int32),
    },
    {
        "scale": torch.tensor([0.25]),
        "zero_point": torch.tensor([3.7]),
        "zero_point_dtype": "int8",
        "scale_dtype": "bfloat16",
    },
]


@pytest.mark.parametrize("kw", FIXED_CASES, ids=[f"fixed{i}" for i in range(len(FIXED_CASES))])
def test_fixed_matches_torchao(backend: Any, kw: dict[str, Any]) -> None:
    names = [str(v.dtype).removeprefix("torch.") for v in kw.values() if hasattr(v, "dtype")]
    _require(backend, *names, *(v for k, v in kw.items() if k.endswith("_dtype")))
    ref = tob.AffineQuantizedFixedQParamObserver(
        tq.MappingType.SYMMETRIC, torch.int8, tg.PerTensor(), **_torch_kw(kw)
    )
    ours = {k: (_to(backend, v) if hasattr(v, "dtype") else v) for k, v in kw.items()}
    bind = {} if "scale" in kw else {"xp": backend.xp, "device": backend.device}
    obs = affine.AffineQuantizedFixedQParamObserver(
        A.SYMMETRIC, "int8", affine.PerTensor(), **bind, **ours
    )
    x = _to(backend, torch.ones(2, 3))
    assert obs(x) is x
    want_scale, want_zp = ref.calculate_qparams()
    scale, zp = obs.calculate_qparams()
    _match(scale, want_scale, "scale", backend)
    _match(zp, want_zp, "zero_point", backend)
    assert list(obs.state_dict()) == list(ref.state_dict()) == ["scale", "zero_point"]


def test_fixed_set_qparams_and_binding() -> None:
    ref = tob.AffineQuantizedFixedQParamObserver(
        tq.MappingType.SYMMETRIC, torch.int8, tg.PerTensor()
    )
    obs = affine.AffineQuantizedFixedQParamObserver(A.SYMMETRIC, "int8", affine.PerTensor())
    assert obs.xp is None  # unbound: the default [1.0] waits in NumPy
    # set_qparams keeps a zero scale (only the constructor swaps it)
    for scale, zp in (
        (torch.tensor([0.0]), None),
        (torch.tensor([0.3]), torch.tensor([2], dtype=torch.int32)),
    ):
        ref.set_qparams(scale, zp)
        obs.set_qparams(scale, zp)
        for got, want in zip(obs.calculate_qparams(), ref.calculate_qparams(), strict=True):
            _match(got, want, "qparams", HOST)
    with pytest.raises(TypeError, match="bound to"):
        obs(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="scale must be an array"):
        obs.set_qparams(0.5)
    with pytest.raises(TypeError, match="zero_point is an array of numpy"):
        obs.set_qparams(torch.tensor([0.5]), np.array([1]))
    with pytest.raises(TypeError, match="scale must be float16"):
        obs.set_qparams(torch.tensor([1]))
    _match(
        obs.calculate_qparams()[1],
        torch.tensor([2], dtype=torch.int32),
        "unchanged zero point",
        HOST,
    )
    # an unbound observer moves its default qparams to the first array's library
    fresh = affine.AffineQuantizedFixedQParamObserver(A.SYMMETRIC, "int8", affine.PerTensor())
    fresh(torch.ones(3))
    assert isinstance(fresh.calculate_qparams()[0], torch.Tensor)


def test_fixed_several_elements_taken_where_torchao_fails() -> None:
    scale = torch.tensor([0.5, 0.25])
    with pytest.raises(RuntimeError, match="ambiguous"):
        tob.AffineQuantizedFixedQParamObserver(
            tq.MappingType.SYMMETRIC, torch.int8, tg.PerAxis(0), scale=scale
        )
    obs = affine.AffineQuantizedFixedQParamObserver(
        A.SYMMETRIC, "int8", affine.PerAxis(0), scale=scale
    )
    got_scale, got_zp = obs.calculate_qparams()
    assert torch.equal(got_scale, scale)
    assert torch.equal(got_zp, torch.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        affine.AffineQuantizedFixedQParamObserver(
            A.SYMMETRIC, "int8", affine.PerAxis(0), scale=torch.zeros(0)
        )
    strict = pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError, match="device"):
        affine.AffineQuantizedFixedQParamObserver(
            A.SYMMETRIC,
            "int8",
            affine.PerAxis(0),
            scale=strict.asarray([0.5], device=strict.Device("device1")),
            xp=strict,
        )


def test_fixed_copy_pickle_state_dict(backend: Any) -> None:
    _require(backend, "bfloat16")
    scale = _to(backend, torch.tensor([0.5, 0.125], dtype=torch.bfloat16))
    zp = _to(backend, torch.tensor([3, -2], dtype=torch.int32))
    obs = affine.AffineQuantizedFixedQParamObserver(
        A.SYMMETRIC, "int8", affine.PerAxis(0), scale=scale, zero_point=zp
    )
    want = [_host(v) for v in obs.calculate_qparams()]
    dtypes = [v.dtype for v in obs.calculate_qparams()]
    for clone in (copy.deepcopy(obs), pickle.loads(pickle.dumps(obs))):
        got = clone.calculate_qparams()
        assert [v.dtype for v in got] == dtypes
        assert all(np.array_equal(_host(g), w) for g, w in zip(got, want, strict=True))
    if backend.library == "torch":  # a copy's buffers are its own, as torchao's deepcopy
        own = affine.AffineQuantizedFixedQParamObserver(
            A.SYMMETRIC, "int8", affine.PerAxis(0), scale=scale.clone(), zero_point=zp
        )
        clone = copy.deepcopy(own)
        own.calculate_qparams()[0].mul_(2)
        assert np.array_equal(_host(clone.calculate_qparams()[0]), want[0])
    other = affine.AffineQuantizedFixedQParamObserver(
        A.SYMMETRIC, "int8", affine.PerAxis(0), scale=_to(backend, torch.ones(2)), zero_point=zp
    )
    other.load_state_dict(obs.state_dict())
    got = other.calculate_qparams()
    assert str(got[0].dtype).endswith("float32")  # copied into the buffer's dtype, as torch
    assert np.array_equal(_host(got[0]), want[0])
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict({"scale": _to(backend, torch.ones(3)), "zero_point": zp})
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({"scale": _to(backend, torch.ones(2))})
    assert np.array_equal(_host(other.calculate_qparams()[0]), want[0])


def test_fixed_keeps_no_graph() -> None:
    """A scale or zero point that carries an autograd graph is stored without it
    (constructor and set_qparams); the observer then deep-copies and pickles."""
    scale = torch.tensor([0.5, 0.25], requires_grad=True) * 2
    zp = torch.tensor([1.0, 2.0], requires_grad=True) + 0
    obs = affine.AffineQuantizedFixedQParamObserver(
        A.ASYMMETRIC, "uint8", affine.PerAxis(0), scale=scale, zero_point=zp
    )
    obs.set_qparams(torch.tensor([3.0, 4.0], requires_grad=True) * 1, zp * 1)
    for v in (*obs.calculate_qparams(), obs.scale, obs.zero_point):
        assert not v.requires_grad and v.grad_fn is None
    for other in (copy.deepcopy(obs), pickle.loads(pickle.dumps(obs))):
        assert torch.equal(other.scale, obs.scale) and torch.equal(other.zero_point, obs.zero_point)
