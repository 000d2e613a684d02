"""Intra-op threading for chains of small kernels."""

from __future__ import annotations

from contextlib import contextmanager

import torch

@contextmanager
def serial_on_cpu(device: torch.device):
    """Run the enclosed torch ops with one intra-op thread when ``device`` is the CPU; elsewhere do nothing.

    A chain of many small kernels (the candidate-pair assignment: ~200 kernels over P pairs, thousands to a few
    million) loses to threading: every kernel torch parallelises ends in a barrier that all intra-op threads
    must reach, and on a CPU where another process (a data-loader worker, another job) holds a core, a thread
    waits for a scheduler time slice at nearly every barrier. One thread has no barrier to wait at (see
    benchmarks/bench_assigner.py). The caller's count is restored on exit; ``torch.set_num_threads`` costs
    under a microsecond.
    """
    n = torch.get_num_threads()
    if device.type != "cpu" or n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


SIMD_BLOCK = 64  # elements: a multiple of torch's CPU loop step (2 vectors: 32 float32 with AVX-512, 16 with AVX2)


def pow_in_whole_blocks(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """``x.pow(exponent)`` for a 1-D tensor, with every element computed inside a full SIMD block.

    torch's CPU kernel computes blocks of 2 vectors with a vectorised pow and the remainder of each thread's
    range with the scalar one, and the two round differently in the last bit (measured: 1.7 % of u^6 for u in
    [0, 1)). So ``x.pow(e)[i]`` depends on where element i falls relative to the end of the tensor and the
    thread split. Here the tensor is padded to whole blocks and computed on one thread: each result depends
    on its input alone, whatever the length, order or thread count. (float32 atan and sqrt give the same bits
    on both paths, so they need no such care.)
    """
    n = x.numel()
    pad = (-n) % SIMD_BLOCK
    with serial_on_cpu(x.device):
        if x.device.type != "cpu" or not pad:
            return x.pow(exponent)
        return torch.cat((x, x.new_ones(pad))).pow(exponent)[:n]
