"""The per-tensor observers: torch's ``MinMaxObserver`` and ``MovingAverageMinMaxObserver``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arrayobs import _core as core
from arrayobs._config import FLOAT32_EPS, boolean, real_number
from arrayobs._observers._base import Observer


class MinMaxObserver(Observer):
    """Running min and max of every array observed, and the qparams they imply.

    The same arguments, state, qparams and state_dict as
    ``torch.ao.quantization.MinMaxObserver`` in torch 2.13.0, bit for bit, on
    any Array API backend.

    Parameters
    ----------
    dtype : str or torch.dtype
        Quantized dtype: quint8, qint8, qint32, quint4x2, int8, uint8, int16,
        uint16, int32, float8_e5m2, float8_e4m3fn. quint4x2 and both float8
        dtypes get the range (0, 15), as in torch (an accident there for float8).
    qscheme : str or torch.qscheme
        ``"per_tensor_affine"`` or ``"per_tensor_symmetric"``.
    reduce_range : bool
        Halve the range (deprecated in torch; warns).
    quant_min, quant_max : int, optional
        A customized range, used only when both are given. An affine range
        beyond int32 is accepted here, as by torch, and refused by
        :meth:`calculate_qparams`.
    factory_kwargs : dict, optional
        torch's placement of the buffers: ``device`` (with ``xp=None``, the
        observer binds to torch on that device) and ``dtype`` (float32 only).
    eps : float
        Lower bound of the scale, rounded to float32.
    is_dynamic : bool
        Kept for API compatibility.
    xp : module, optional
        The array library (numpy, torch, jax.numpy, cupy, dask.array,
        array_api_strict) or Array API namespace. ``None`` binds the observer
        to the namespace and device of the first array it observes; until
        then its state lives in NumPy.
    device : optional
        Device of the state, with ``xp``; default: the library's default device.
    fast : bool
        Use the backend's fast path for the batch's (min, max) and the update
        (the default). ``False`` runs the generic Array API code, for
        comparison: the same numbers, except that of two zeros of different
        sign in a batch either may be taken.
    process_group : torch.distributed.ProcessGroup, optional
        Data-parallel observation (torch tensors only): each forward reduces
        the batch's (min, max) across the group in one collective before the
        update, so every rank holds the state one process would have after
        observing the concatenated batch. Every rank must call forward in
        step (an empty shard is fine).

    Notes
    -----
    ``forward`` may be called from several threads: each call's update of the
    state is atomic. Observers deep-copy and pickle (not with a process group).

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import MinMaxObserver
    >>> obs = MinMaxObserver(dtype="qint8", qscheme="per_tensor_symmetric")
    >>> x = np.linspace(-3.0, 1.0, 1000, dtype=np.float32)
    >>> obs(x) is x
    True
    >>> scale, zero_point = obs.calculate_qparams()
    >>> scale, zero_point
    (array([0.02352941], dtype=float32), array([0]))
    """


class MovingAverageMinMaxObserver(MinMaxObserver):
    """Moving averages of each batch's min and max, and the qparams they imply.

    As ``torch.ao.quantization.MovingAverageMinMaxObserver`` in torch 2.13.0:
    the first batch sets the state; each later batch moves it by
    ``m + c * (cur - m)`` in float32 (torch's docs say ``(1 - c) * m + c * cur``,
    which rounds differently). ``averaging_constant`` is not range-checked, as
    in torch. Other parameters as :class:`MinMaxObserver`.

    Examples
    --------
    >>> import numpy as np
    >>> from arrayobs import MovingAverageMinMaxObserver
    >>> obs = MovingAverageMinMaxObserver(averaging_constant=0.5)
    >>> _ = obs(np.asarray([0.0, 4.0], dtype=np.float32))
    >>> _ = obs(np.asarray([-2.0, 2.0], dtype=np.float32))
    >>> float(obs.min_val), float(obs.max_val)
    (-1.0, 3.0)
    """

    def __init__(
        self,
        averaging_constant: float = 0.01,
        dtype: Any = "quint8",
        qscheme: Any = "per_tensor_affine",
        reduce_range: bool = False,
        quant_min: int | None = None,
        quant_max: int | None = None,
        eps: float = FLOAT32_EPS,
        is_dynamic: bool = False,
        *,
        factory_kwargs: Mapping[str, Any] | None = None,
        xp: Any = None,
        device: Any = None,
        fast: bool = True,
        process_group: Any = None,
    ) -> None:
        c = real_number(averaging_constant, "averaging_constant")
        if boolean(is_dynamic, "is_dynamic") and c != 1:
            msg = (
                "is_dynamic=True needs averaging_constant=1 "
                f"(got {averaging_constant!r}), as in torch"
            )
            raise NotImplementedError(msg)
        self.averaging_constant = averaging_constant
        self._rule = core.MovingAverage(averaging_constant)
        super().__init__(
            dtype,
            qscheme,
            reduce_range,
            quant_min,
            quant_max,
            factory_kwargs,
            eps,
            is_dynamic,
            xp=xp,
            device=device,
            fast=fast,
            process_group=process_group,
        )

    def merge(self, other: Observer) -> None:
        """Refused: moving averages cannot be merged after the fact.

        Each step ``m + c * (cur - m)`` depends on the state the batches before
        it left, so two shards' final averages do not determine the average of
        the interleaved stream. Reduce each batch's (min, max) across workers
        before the update instead: ``process_group=`` (torch.distributed), a
        sharded JAX array, or a Dask array (docs/guide/scale-out.md).
        """
        msg = (
            "moving averages cannot be merged after the fact: each update depends on the "
            "state before it; synchronise every batch's (min, max) instead (process_group=, "
            "a sharded JAX array or a Dask array)"
        )
        raise TypeError(msg)
