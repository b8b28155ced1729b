"""Rows and a markdown table for benches that time variants against one reference side
by side (``bench.histogram``: torch.ao; ``bench.calib``: ORT and ModelOpt): each row a
median, the reference's median over it, and whether the variant's result agrees."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bench.cases import Timing


def rows(
    case: str,
    timings: dict[str, Timing | Exception],
    reference: str,
    agrees: Callable[[str], bool] | None = None,
) -> list[dict[str, Any]]:
    """One row per variant of ``timings`` (``reference`` among them): ``median_ms``,
    ``ref_over_this`` and, for the others and given ``agrees``, ``agrees(variant)``; an
    error instead of a timing where the variant raised."""
    ref = timings[reference]
    out = []
    for variant, timing in timings.items():
        row: dict[str, Any] = {"case": case, "variant": variant}
        if isinstance(timing, Exception):
            row["error"] = f"{type(timing).__name__}: {timing}"
        else:
            row["median_ms"] = timing.median_s * 1e3
            if not isinstance(ref, Exception):
                row["ref_over_this"] = ref.median_s / timing.median_s
        if agrees is not None and variant != reference:
            row["agrees"] = agrees(variant)
        out.append(row)
        print(case, variant, row.get("median_ms", row.get("error")), file=sys.stderr)
    return out


def markdown(title: str, notes: list[str], found: list[dict[str, Any]], ratio: str) -> str:
    """The rows as a markdown table under ``title`` and the bullet ``notes``; ``ratio``
    heads the reference-over-variant column."""
    out = [f"# {title}", "", *(f"- {n}" for n in notes), ""]
    out += [f"| case | variant | median ms | {ratio} | agrees |", "|---|---|---|---|---|"]
    for r in found:
        ms = f"{r['median_ms']:.3f}" if "median_ms" in r else r["error"][:40]
        times = f"{r['ref_over_this']:.1f}x" if "ref_over_this" in r else ""
        out.append(f"| {r['case']} | {r['variant']} | {ms} | {times} | {r.get('agrees', '')} |")
    return "\n".join(out) + "\n"
