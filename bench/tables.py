"""The tables the reports are made of: records by key, formatted cells and ratios
(below both ``bench/report.py`` and the per-topic modules that write a block)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench.cases import Record
from bench.gpu import GPU_FLOORS
from bench.timing import CPU_FLOORS


def _fmt(seconds: float | None, scale: float) -> str:
    if seconds is None:
        return "-"
    value = seconds * scale
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _ratio(num: float | None, den: float | None, percent: bool = False) -> str:
    if num is None or den is None or den == 0:
        return "-"
    return f"{100 * num / den:.0f}%" if percent else f"{num / den:.2f}x"


class Table:
    """Records indexed by (backend, dtype, n, variant), with footnotes for the missing."""

    def __init__(
        self, records: Sequence[Record], key: Callable[[Any], tuple[Any, ...]] | None = None
    ) -> None:
        key = key or (lambda r: (r.backend, r.dtype, r.n, r.variant))
        self.by_key = {key(r): r for r in records}
        self.notes: dict[str, int] = {}

    def seconds(self, key: tuple[Any, ...]) -> float | None:
        r = self.by_key.get(key)
        return r.median_s if r is not None and r.status == "ok" else None

    def cell(self, key: tuple[Any, ...], scale: float) -> str:
        r = self.by_key.get(key)
        if r is None:
            return "-"
        if r.status == "ok":
            flag = "" if r.agrees_with_torch_ao in (None, True) else " (≠torch.ao!)"
            return _fmt(r.median_s, scale) + flag
        text = f"{r.status}: {r.note}"
        number = self.notes.setdefault(text, len(self.notes) + 1)
        return f"{r.status} [{number}]"

    def floor(self, device: str, dtype: str, n: int) -> float | None:
        """The faster read floor of ``device`` on the bytes of case (dtype, n)."""
        names = GPU_FLOORS if device == "gpu" else CPU_FLOORS
        found = [self.seconds((device, dtype, n, v)) for v in names]
        return min((s for s in found if s is not None), default=None)
