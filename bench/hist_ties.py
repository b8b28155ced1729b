"""Near-ties in HistogramObserver's search: how often would another float32 summation
order flip one of torch's ``norm > norm_min`` comparisons?

torch's ``_non_linear_param_search`` compares each candidate's error, a float32
``norm.sum()`` whose value depends on ATen's reduction order, with the previous
one's. For every state (after every batch of the histogram corpus, or of random
sequences with ``--fuzz N``) this walks torch's search, computes each candidate's
per-bin ``norm`` with torch's own ops, and sums it in four orders: ATen's
(``norm.sum()``), NumPy's pairwise float32 ``np.sum``, a sequential float32 sum,
and a sequential float64 sum rounded to float32. A comparison counts as a tie
where the orders disagree on ``norm > norm_min``.

    python bench/hist_ties.py            # every state of the stored corpus
    python bench/hist_ties.py --fuzz 200 # and 200 random sequences (seeded)

Needs torch 2.13.0; reads the stored reference (no observer of arrayobs runs).
"""

from __future__ import annotations

import argparse
import struct
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch.ao.quantization import HistogramObserver

from arrayobs._conformance import _hist_corpus as H
from arrayobs._conformance._records import load_histogram


def f32(v: float) -> float:
    return float(struct.unpack("f", struct.pack("f", v))[0])


def norms(obs: Any, start: int, end: int) -> torch.Tensor | None:
    """torch's ``_compute_quantization_error(start, end)`` before its final sum (its
    ops, in its order); None where torch returns 0.0 without computing."""
    bin_width = (obs.max_val.item() - obs.min_val.item()) / obs.bins
    dst = bin_width * (end - start + 1) / obs.dst_nbins
    if dst == 0.0:
        return None
    src = torch.arange(obs.bins)
    begin = (src - start) * bin_width
    stop = begin + bin_width
    of_begin = torch.clamp(torch.div(begin, dst, rounding_mode="floor"), 0, obs.dst_nbins - 1)
    begin_center = (of_begin + 0.5) * dst
    of_end = torch.clamp(torch.div(stop, dst, rounding_mode="floor"), 0, obs.dst_nbins - 1)
    density = obs.histogram / bin_width
    norm = torch.zeros(obs.bins)
    norm += obs._get_norm(begin - begin_center, torch.ones(obs.bins) * (dst / 2), density)
    norm += (of_end - of_begin - 1) * obs._get_norm(
        torch.tensor(-dst / 2), torch.tensor(dst / 2), density
    )
    end_center = of_end * dst + dst / 2
    norm += obs._get_norm(torch.tensor(-dst / 2), stop - end_center, density)
    return norm


def orders(norm: torch.Tensor) -> list[float]:
    """The sum in ATen's, NumPy's pairwise, sequential float32 and float64 orders."""
    v = norm.numpy()
    return [
        norm.sum().item(),
        float(np.sum(v, dtype=np.float32)),
        float(np.cumsum(v, dtype=np.float32)[-1]),
        f32(float(np.cumsum(v.astype(np.float64))[-1])),
    ]


def walk(obs: Any) -> tuple[int, int, int]:
    """torch's search on ``obs``'s state: (comparisons, ties, candidates evaluated)."""
    hist = obs.histogram
    total = torch.sum(hist).item()
    csum = torch.cumsum(hist, dim=0).tolist()
    alpha, beta, start, end = 0.0, 1.0, 0, obs.bins - 1
    best: list[float] | None = None
    compared = ties = evaluated = 0
    while alpha < beta:
        next_alpha, next_beta = alpha + 1e-5, beta - 1e-5
        lo, hi = start, end
        a_thr, b_thr = f32(next_alpha * total), f32(next_beta * total)
        while lo < end and csum[lo] < a_thr:
            lo += 1
        while hi > start and csum[hi] > b_thr:
            hi -= 1
        new_start, new_end = start, end
        if lo - start > end - hi:
            new_start, alpha = lo, next_alpha
        else:
            new_end, beta = hi, next_beta
        if (new_start, new_end) == (start, end):
            continue
        norm = norms(obs, new_start, new_end)
        evaluated += 1
        sums = [0.0] * 4 if norm is None else orders(norm)
        real = obs._compute_quantization_error(new_start, new_end)
        assert sums[0] == real, (sums[0], real)  # ATen's order is torch's own value
        if best is not None:
            compared += 1
            outcomes = {s > b for s, b in zip(sums, best, strict=True)}
            ties += len(outcomes) > 1
        if sums[0] > (best[0] if best is not None else float("inf")):
            break
        best, start, end = sums, new_start, new_end
    return compared, ties, evaluated


def observer(bins: int, histogram: np.ndarray, lo: float, hi: float, dtype: str) -> Any:
    obs = HistogramObserver(bins=bins, dtype=getattr(torch, dtype))
    obs.histogram.copy_(torch.from_numpy(histogram))
    obs.min_val.fill_(lo)
    obs.max_val.fill_(hi)
    return obs


def corpus() -> tuple[int, int, int, int]:
    stored, _ = load_histogram()
    states = compared = ties = evaluated = 0
    for case in H.cases():
        rows = stored.case(case.id)
        for r, status in enumerate(rows["hist_status"]):
            if status != 0:
                continue
            h = rows["histograms"][r].view(np.float32)
            lo, hi = (
                float(rows[f][r : r + 1].view(np.float32)[0])
                for f in ("hist_min_bits", "hist_max_bits")
            )
            c, t, e = walk(observer(case.bins, h, lo, hi, case.dtype))
            if t:
                print(f"  case {case.id} batch {r}: {t} tie(s) in {c} comparisons")
            states, compared, ties, evaluated = states + 1, compared + c, ties + t, evaluated + e
    return states, compared, ties, evaluated


def fuzz(n: int, seed: int) -> tuple[int, int, int, int]:
    rng = np.random.default_rng(seed)
    states = compared = ties = evaluated = 0
    for i in range(n):
        bins = int(rng.choice([1, 2, 3, 7, 16, 256, 2048, 4096]))
        dtype = str(rng.choice(["quint8", "qint8"]))
        obs = HistogramObserver(bins=bins, dtype=getattr(torch, dtype))
        scale = 10.0 ** rng.uniform(-3, 3)
        for _ in range(int(rng.integers(1, 5))):
            size = int(rng.choice([1, 8, 32, 256, 4096]))
            kind = rng.integers(3)
            x = rng.standard_normal(size) if kind == 0 else rng.standard_t(1.5, size)
            if kind == 2:
                x = np.round(x * 4) / 4  # repeated values: equal errors are common
            obs(torch.from_numpy((x * scale).astype(np.float32)))
            c, t, e = walk(obs)
            if t:
                print(f"  fuzz {i} (bins {bins}, {dtype}): {t} tie(s) in {c} comparisons")
            states, compared, ties, evaluated = states + 1, compared + c, ties + t, evaluated + e
    return states, compared, ties, evaluated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz", type=int, default=0, help="random sequences besides the corpus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.simplefilter("ignore", UserWarning)
    runs = [("corpus", corpus)]
    if args.fuzz:
        runs.append(
            (f"fuzz ({args.fuzz} sequences, seed {args.seed})", lambda: fuzz(args.fuzz, args.seed))
        )
    for name, run in runs:
        start = time.perf_counter()
        states, compared, ties, evaluated = run()
        print(
            f"{name}: {states} states, {evaluated} candidates evaluated, {compared} comparisons "
            f"norm > norm_min, {ties} ties (orders disagree) [{time.perf_counter() - start:.0f} s]"
        )


if __name__ == "__main__":
    main()
