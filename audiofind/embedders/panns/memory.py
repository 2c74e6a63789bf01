"""Giving memory back to the OS: the pages of converted checkpoint tensors and the C heap's free pages."""

import ctypes
import os


def forget_pages(*tensors):
    """Drop the resident pages of memory-mapped checkpoint tensors once they are converted.

    Harmless for tensors that are not mapped: their whole pages read back as zeros, and nothing reads them again.
    """
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        madvise = ctypes.CDLL(None).madvise
    except (OSError, AttributeError):
        return
    for tensor in tensors:
        start = -(-tensor.data_ptr() // page) * page
        end = (tensor.data_ptr() + tensor.numel() * tensor.element_size()) // page * page
        if end > start:
            madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), 4)  # MADV_DONTNEED


def release_free_memory():
    """Give the C heap's free pages back to the OS (glibc keeps them after large frees)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
