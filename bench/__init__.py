"""Benchmarks of arrayobs against naive reductions, torch.ao and a memory-read floor.

Run ``python bench/run.py --help`` (or ``python -m bench.run``) from the repository root.
"""
