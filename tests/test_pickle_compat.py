"""Pickles written by arrayobs before the one-shell change still load, and the
objects they hold observe and report exactly as the same objects built now."""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np
import pytest

from arrayobs._compat import to_host
from tests.data import main_pickles

STORED = pickle.loads(main_pickles.PATH.read_bytes())
NEXT = np.linspace(-5.0, 7.0, 32, dtype=np.float32).reshape(4, 8)


def _report(obj: Any) -> list[Any]:
    """What an object shows: its state_dict (with metadata), qparams, and repr."""
    out: list[Any] = [repr(obj)]
    sd = obj.state_dict()
    out.append(getattr(sd, "_metadata", None))
    out.extend(
        (k, np.asarray(to_host(v)).tobytes(), str(np.asarray(to_host(v)).dtype))
        for k, v in sd.items()
    )
    if hasattr(obj, "get_tensor_value"):
        out.extend(np.asarray(v).tobytes() for v in obj.get_tensor_value())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the never-observed one warns, as torch
            qparams = obj.calculate_qparams()
    except RuntimeError:
        qparams = ()
    out.extend(None if q is None else np.asarray(to_host(q)).tobytes() for q in qparams)
    return out


def test_the_stored_pickles_cover_every_recipe() -> None:
    assert sorted(STORED) == sorted(main_pickles.objects())


@pytest.mark.parametrize("name", sorted(STORED))
def test_a_pickle_written_before_loads_and_observes_as_now(name: str) -> None:
    built = main_pickles.objects()[name]
    loaded = pickle.loads(STORED[name])
    assert type(loaded) is type(built)
    assert _report(loaded) == _report(built)
    for obj in (loaded, built):
        out = obj(NEXT)
        assert out is NEXT or np.asarray(out).shape == NEXT.shape
    assert _report(loaded) == _report(built)
    # And it pickles again, as now.
    again = pickle.loads(pickle.dumps(loaded))
    assert _report(again) == _report(built)
