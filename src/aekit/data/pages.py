"""Paging advice for memory-mapped data (see :mod:`aekit.data.mapped`).

Training reads a mapped file in random order, one batch of rows at a time, so the mapping is
advised ``MADV_RANDOM``: a page fault then reads its own page and not the read-ahead window around
it, which for rows of a few KiB in a file larger than memory multiplied the bytes read by tens. The
whole-data checks read it in order, a block of rows at a time; :func:`prefetch` asks for each block
in one ``MADV_WILLNEED`` read instead of a page per fault.
"""

from __future__ import annotations

import mmap
import weakref

import numpy as np
import torch

_MAPPED: list[weakref.ref] = []  # the numpy.memmap arrays aekit mapped, while they live


def register(x: np.ndarray) -> None:
    """Advise random reads on the mapping behind ``x`` (a numpy.memmap) and remember it for prefetch."""
    handle = getattr(x, "_mmap", None)  # numpy.memmap's mmap.mmap object
    if handle is None or not hasattr(handle, "madvise"):
        return
    _advise(handle, getattr(mmap, "MADV_RANDOM", None), 0, len(handle))
    _MAPPED[:] = [r for r in _MAPPED if r() is not None] + [weakref.ref(x)]


def prefetch(block: torch.Tensor) -> None:
    """Start reading the bytes under ``block`` (rows of a registered mapping) in one request."""
    if not _MAPPED or block.device.type != "cpu" or block.numel() == 0:
        return
    start = block.data_ptr()
    end = start + block.shape[0] * block.stride(0) * block.element_size()  # the rows' span (a row block)
    for ref in _MAPPED:
        x = ref()
        if x is None or not x.ctypes.data <= start < x.ctypes.data + x.nbytes:
            continue
        lead = x.offset % mmap.ALLOCATIONGRANULARITY  # the mapping starts this far before the array's data
        lo = start - x.ctypes.data + lead
        hi = min(end - x.ctypes.data + lead, len(x._mmap))
        lo -= lo % mmap.PAGESIZE
        _advise(x._mmap, getattr(mmap, "MADV_WILLNEED", None), lo, hi - lo)
        return


def _advise(handle: mmap.mmap, option: int | None, start: int, length: int) -> None:
    if option is None or length <= 0:
        return
    try:
        handle.madvise(option, start, length)
    except (OSError, ValueError):
        pass  # advice only
