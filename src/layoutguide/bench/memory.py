"""Peak memory of a block of work: CUDA's allocator peak, or on CPU the resident-set peak above its start."""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import threading

import torch


def _release_free_memory() -> None:
    """Return freed heap pages to the OS (glibc ``malloc_trim``), so that RSS growth measures new allocations."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the measurement is then an underestimate after heavier methods
        pass


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: fall back to the process high-water mark
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory during a block: CUDA's allocator peak, or on CPU the resident-set peak above the start
    (sampled every 20 ms, after returning freed heap pages to the OS)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = 0
        self._start = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            _release_free_memory()  # otherwise memory freed by the previous method hides this one's growth
            self._start = _rss()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_bytes = max(self.peak_bytes, _rss() - self._start)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self.peak_bytes = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            self.peak_bytes = max(self.peak_bytes, _rss() - self._start)
