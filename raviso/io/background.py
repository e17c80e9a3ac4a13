"""The background threads of `raviso convert`: a sha256 of every input file computed while the
conversion reads it (hashlib releases the GIL, so hashing overlaps conversion instead of adding a
second pass), and a prefetching reader thread so reading and Parquet writing overlap."""

from __future__ import annotations

import hashlib
import queue
import threading
from pathlib import Path


class Hasher(threading.Thread):
    """sha256 of each input file, read in a background thread alongside the conversion."""

    def __init__(self, paths):
        super().__init__(daemon=True, name="raviso-sha256")
        self.paths = list(dict.fromkeys(Path(p) for p in paths))
        self.digests: dict[Path, str] = {}
        self.stop = threading.Event()

    def run(self):
        buf = bytearray(8 << 20)
        view = memoryview(buf)
        for p in self.paths:
            h = hashlib.sha256()
            try:
                with open(p, "rb") as f:
                    while not self.stop.is_set():
                        n = f.readinto(buf)
                        if not n:
                            break
                        h.update(view[:n])
            except OSError:
                continue    # the converter itself reports unreadable inputs, as one line
            if self.stop.is_set():
                return
            self.digests[p] = h.hexdigest()

    def result(self) -> dict[Path, str]:
        self.join()
        return self.digests


PREFETCH = 1   # chunks read ahead by a reader thread while the main thread writes Parquet


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


_END = object()


def prefetch(make_iter, depth: int = PREFETCH):
    """Iterate `make_iter()` in a background thread, `depth` items ahead.

    Reading (h5py, the CSV parser) and writing Parquet then overlap: pyarrow releases the GIL while
    it encodes and writes, so on two or more cores the conversion costs about max(read, write)
    instead of their sum. Readers must cycle through ``depth + 2`` buffers (the `ring` argument of
    `MatrixSource.chunks`): one being consumed, `depth` queued, one being filled. Exceptions in
    the reader re-raise here; leaving the loop early stops the reader.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for item in make_iter():
                if not put(item):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(_Raised(e))

    t = threading.Thread(target=work, daemon=True, name="raviso-read")
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        t.join()
