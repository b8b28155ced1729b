"""Throughput and per-call overhead of arrayobs observers, against the alternatives.

What is measured
----------------
For every selected backend (numpy, torch, jax, dask on the CPU; cupy, torch:cuda and
jax:gpu when an NVIDIA GPU is present, skipped with the reason otherwise) and every case
(float32 at 1e2, 1e4, 1e6, 1e7 and 1e8 elements; float16, bfloat16, float64 and int8 at
1e7), the time of one call of:

``arrayobs``
    ``MinMaxObserver(xp=ns, device=dev)(x)``, the fast path.
``fast_off``
    The same observer with ``fast=False``: the generic Array API path.
``naive``
    ``xp.min(x)`` and ``xp.max(x)`` through the Array API namespace; on JAX
    ``jax.jit(lambda x: (x.min(), x.max()))``, on Dask ``dask.compute(x.min(), x.max())``.
``torch_ao``
    ``torch.ao.quantization.observer.MinMaxObserver`` on the same values as a torch tensor:
    the backend's own tensor for torch, a DLPack view for GPU backends, and
    ``torch.from_numpy`` of the host copy (CPU) otherwise.

and, once per case and device, a read-bandwidth floor on the same number of bytes:

``floor_all_cores`` / ``floor_one_core`` (CPU)
    ``np.maximum.reduce`` over the buffer's uint64 view (uint8 when the size is not a
    multiple of 8), split into one contiguous part per core in a thread pool, and over the
    whole view on one thread. The floor column of the tables is the faster of the two.
``floor_gpu_cupy_max`` / ``floor_gpu_torch_sum`` (GPU)
    ``cupy.max`` of a uint64 buffer and ``torch.sum`` of an int64 buffer on the device;
    the floor column is the faster one. The device's theoretical bandwidth
    (``2 * memory clock * bus width / 8``) is recorded when it can be queried.

Separately, the per-call overhead on 100 float32 elements: ``forward`` and
``calculate_qparams`` (default, and ``check=False``) of ``MinMaxObserver`` and
``MovingAverageMinMaxObserver`` on each selected backend, each next to torch.ao's
equivalent (on the CPU, or CUDA for GPU backends).

Per-channel section
-------------------
``PerChannelMinMaxObserver(ch_axis=...)(x)`` on three shapes: weight-like (4096, 4096)
with ``ch_axis=0`` (4096 channels of 4096), activation-like channels-last (2441, 4096)
with ``ch_axis=-1`` (about 1e7 elements) and NCHW (8, 64, 128, 152) with ``ch_axis=1``
(about 1e7), each in float32, float16, bfloat16 and float64; per shape and dtype,
back to back: torch.ao's ``PerChannelMinMaxObserver`` forward on a torch tensor of the same
values (once per device: CPU next to CPU backends, CUDA next to GPU backends), then
arrayobs on each backend (``fast=False`` too on NumPy and torch). Dask arrays are split
into 4 chunks along axis 0. ``MovingAveragePerChannelMinMaxObserver`` is timed the same way
on float32. The ratio reported is torch.ao's median over arrayobs's. ``--quick`` keeps the
first two shapes, with fewer repeats.

Fake-quantize section
---------------------
``F.fake_quantize_per_tensor_affine`` on float32 at 1e2, 1e6 and 1e8 elements (``--quick``:
1e2 and 1e6) on NumPy, torch (CPU) and JAX (jitted), against ``fast=False``, torch's own
``torch.fake_quantize_per_tensor_affine`` and a read+write floor (a copy into a new array;
on NumPy also ``np.copyto`` into one allocated once); the variants of a case are interleaved
round by round. See ``bench/fakequant.py``.

Affine section
--------------
torchao's per-block ``choose_qparams_affine`` + ``quantize_affine`` of a 4096 x 4096 float32
weight (uint4 asymmetric and int4 symmetric with group 128, int8 symmetric per row) on
NumPy, torch (CPU) and JAX (jitted), against ``fast=False`` and torchao 0.18.0 itself on
a torch tensor of the same values, all variants of a case interleaved round by round; each
output compared with torchao's bit for bit. See ``bench/affine.py``.

How
---
Data are drawn once per size, ``numpy.random.default_rng(0).standard_normal`` in float32,
then converted (int8: ``clip(rint(32 x))``; bfloat16 on NumPy and Dask: ``ml_dtypes`` when
it imports). Dask arrays have chunks of 1e6 elements. Every callable is warmed up (which
compiles JAX functions), its device synchronised before the clock stops; ``timeit`` runs
it in repeats of enough calls to last ``target`` seconds (one call for big arrays), and the
median over repeats (at least 5) is reported with the minimum. All variants of one case
run back to back, so their ratios come from the same minute of a noisy machine. After
timing, the observers' min and max are checked against torch.ao's.

Running
-------
From the repository root::

    python bench/run.py                       # everything, up to 1e8 elements
    python bench/run.py --quick               # sizes up to 1e7, fewer repeats
    python bench/run.py --backends numpy,torch --out /tmp/bench
    python bench/run.py --per-channel-only    # the per-channel section alone
    python bench/run.py --sections fake-quantize --backends numpy,torch,jax
    python bench/run.py --sections affine --backends numpy,torch,jax

writes ``results.json`` (machine, versions, command line and every measurement),
``results.md`` (tables) and, when matplotlib imports, ``throughput.png`` to ``--out``
(default ``bench/results``). ``--sections`` (or ``--per-channel-only``) runs only some
sections; the others are kept from the files already in ``--out``: the per-tensor part is
the top level of ``results.json`` and of ``results.md``, the per-channel part is
``results.json["per_channel"]`` and the block of ``results.md`` between the
``<!-- per-channel -->`` markers, the fake-quantize part ``results.json["fake_quantize"]``
and the block between the ``<!-- fake-quantize -->`` markers, the affine part
``results.json["affine"]`` and the block between the ``<!-- affine -->`` markers. ``throughput.png``
(per-tensor float32) is only rewritten when the per-tensor section runs.

Code
----
``run.py`` parses the options and writes the files; ``cases.py`` holds the settings, the
records, the backends, the input arrays and the callables under test; ``timing.py`` times
a callable and measures the CPU's read floor, ``gpu.py`` the GPU's; ``measure.py`` runs
every case back to back, ``fakequant.py`` the fake-quantize section, ``affine.py`` the
affine one; ``report.py``
describes the machine and writes ``results.json``, ``results.md`` and ``throughput.png``.
``python bench/run.py`` and ``python -m bench.run`` both work from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
import timeit
from pathlib import Path

if not __package__:  # python bench/run.py: sys.path[0] is bench/; import bench as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arrayobs.testing import BACKENDS
from bench.affine import affine_markdown, run_affine
from bench.cases import (
    FQ_FULL,
    FQ_QUICK,
    FQ_QUICK_SIZES,
    FQ_SIZES,
    FULL,
    PC_FULL,
    PC_QUICK,
    QUICK,
    ChannelRecord,
    Record,
    load_backends,
)
from bench.fakequant import run_fake_quantize
from bench.measure import run_per_call, run_per_channel, run_sizes
from bench.report import (
    ROOT,
    _cpu_busy_s,
    _loadavg,
    channel_markdown,
    fake_quant_markdown,
    json_data,
    machine,
    merge_json,
    merge_markdown,
    per_tensor_markdown,
    write_plot,
)

DEFAULT_BACKENDS = ("numpy", "torch", "jax", "dask", "cupy", "torch:cuda", "jax:gpu")
SECTIONS = ("per-tensor", "per-channel", "fake-quantize", "affine")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    known = [b.name for b in BACKENDS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes up to 1e7, fewer repeats")
    parser.add_argument(
        "--backends",
        default=",".join(DEFAULT_BACKENDS),
        help=f"comma-separated, from {', '.join(known)} (default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--torch-threads",
        type=int,
        help="torch.set_num_threads before measuring (default: torch's)",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated, from {', '.join(SECTIONS)} (default: %(default)s); the results"
        " of the others are kept from --out",
    )
    parser.add_argument(
        "--per-channel-only",
        action="store_true",
        help="the per-channel section alone (as --sections per-channel)",
    )
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in args.backends if b not in known]
    if unknown:
        parser.error(f"unknown backends {unknown}; known: {known}")
    sections = "per-channel" if args.per_channel_only else args.sections
    args.sections = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown or not args.sections:
        parser.error(f"unknown or no sections {unknown}; known: {list(SECTIONS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # JAX on a GPU would otherwise take 75% of its memory, away from CuPy and torch.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    settings = QUICK if args.quick else FULL
    import torch

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    backends, skipped = load_backends(args.backends)
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", file=sys.stderr)
    common = {
        "quick": args.quick,
        "backends": {b.name: str(b.device) for b in backends},
        "skipped": skipped,
    }
    start = timeit.default_timer()
    records: list[Record] = []
    if "per-tensor" in args.sections:
        records = run_sizes(backends, settings) + run_per_call(backends, settings)
    middle = timeit.default_timer()
    channel_records: list[ChannelRecord] = []
    load_before, busy_before, own_before = _loadavg(), _cpu_busy_s(), time.process_time()
    if "per-channel" in args.sections:
        channel_records = run_per_channel(backends, args.quick)
    load_after, busy_after, own_after = _loadavg(), _cpu_busy_s(), time.process_time()
    others = None
    if busy_before is not None and busy_after is not None:
        others = round(max(0.0, busy_after - busy_before - (own_after - own_before)), 1)
    pc_end = timeit.default_timer()
    meta = machine(any(b.gpu for b in backends))
    meta["torch_threads"] = torch.get_num_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    tensor_json = tensor_md = channel_json = channel_md = None
    if "per-tensor" in args.sections:
        extra = {
            "settings": dataclasses.asdict(settings),
            "elapsed_s": round(middle - start, 1),
            **common,
        }
        tensor_json = json_data(meta, records, extra)
        tensor_md = per_tensor_markdown(meta, records, backends, skipped)
        if not write_plot(args.out / "throughput.png", records, backends):
            print("matplotlib does not import: no throughput.png", file=sys.stderr)
    if "per-channel" in args.sections:
        pc_settings = PC_QUICK if args.quick else PC_FULL
        extra = {
            "settings": {"repeats": pc_settings.repeats, "target_s": pc_settings.target_s},
            "elapsed_s": round(pc_end - middle, 1),
            "loadavg_1min_before_after": [load_before, load_after],
            "other_processes_cpu_s": others,
            **common,
        }
        channel_json = json_data(meta, channel_records, extra)
        channel_md = channel_markdown(meta, channel_records, extra)
    fq_json = fq_md = None
    if "fake-quantize" in args.sections:
        fq_settings = FQ_QUICK if args.quick else FQ_FULL
        fq_start = timeit.default_timer()
        fq_records = run_fake_quantize(
            backends, FQ_QUICK_SIZES if args.quick else FQ_SIZES, fq_settings
        )
        extra = {
            "settings": {"repeats": fq_settings.repeats, "target_s": fq_settings.target_s},
            "elapsed_s": round(timeit.default_timer() - fq_start, 1),
            **common,
        }
        fq_json = json_data(meta, fq_records, extra)
        fq_md = fake_quant_markdown(meta, fq_records, extra)
    af_json = af_md = None
    if "affine" in args.sections:
        af_settings = FQ_QUICK if args.quick else FQ_FULL
        af_start = timeit.default_timer()
        af_records = run_affine(backends, af_settings.repeats, af_settings.target_s)
        extra = {
            "settings": {"repeats": af_settings.repeats, "target_s": af_settings.target_s},
            "elapsed_s": round(timeit.default_timer() - af_start, 1),
            **common,
        }
        af_json = json_data(meta, af_records, extra)
        af_md = affine_markdown(meta, af_records, extra)
    end = timeit.default_timer()
    blocks_json = {"per_channel": channel_json, "fake_quantize": fq_json, "affine": af_json}
    merge_json(args.out / "results.json", tensor_json, blocks_json)
    blocks_md = {"per_channel": channel_md, "fake_quantize": fq_md, "affine": af_md}
    merge_markdown(args.out / "results.md", tensor_md, blocks_md)
    print(f"wrote {args.out} in {end - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
