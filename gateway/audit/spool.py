"""The local spool: an append-only JSON-lines file per writer, replayed in order.

Events land here when Redis (or the direct sinks) cannot take them, when the
in-memory queue is full, and for durable writes that Redis could not confirm.
Each writer owns its file through an exclusive `flock`; a file whose lock can be
taken belongs to a dead writer, and the next emitter adopts it (copies its
complete lines into its own spool, fsyncs, then deletes it).

Replay reads from an offset and the file is truncated only once every line has
been delivered; a crash mid-replay re-sends from the start (at-least-once, the
verifier accepts byte-identical duplicates).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

SUFFIX = ".jsonl"


def spool_name(writer: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in writer) + SUFFIX


class Spool:
    def __init__(self, directory: Path, writer: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / spool_name(writer)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._offset = 0
        self._size = os.fstat(self._fd).st_size
        self._dirty = False

    @property
    def offset(self) -> int:
        """Replay position: bytes before it have been delivered."""
        return self._offset

    @property
    def pending_bytes(self) -> int:
        return self._size - self._offset

    def append(self, lines: Sequence[bytes], *, sync: bool) -> None:
        data = b"\n".join(lines) + b"\n"
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)
        self._dirty = True
        if sync:
            self.sync()

    def sync(self) -> None:
        if self._dirty:
            os.fsync(self._fd)
            self._dirty = False

    def read_batch(self, max_lines: int, max_bytes: int = 8 << 20) -> tuple[list[bytes], int]:
        """Complete lines from the replay offset, and the offset after them."""
        if self.pending_bytes <= 0:
            return [], self._offset
        data = os.pread(self._fd, min(self.pending_bytes, max_bytes), self._offset)
        lines: list[bytes] = []
        pos = 0
        while len(lines) < max_lines:
            end = data.find(b"\n", pos)
            if end < 0:
                break
            if end > pos:
                lines.append(data[pos:end])
            pos = end + 1
        if not lines and pos == 0 and len(data) == max_bytes:
            raise OSError(f"spool line longer than {max_bytes} bytes in {self.path}")
        return lines, self._offset + pos

    def commit(self, offset: int) -> None:
        """Mark lines up to `offset` delivered; empty the file once all are."""
        self._offset = offset
        if self._offset >= self._size:
            os.ftruncate(self._fd, 0)
            os.fsync(self._fd)
            self._offset = self._size = 0

    def adopt_orphans(self) -> int:
        """Move complete lines of dead writers' spools into this one; returns lines moved."""
        moved = 0
        for path in sorted(self.path.parent.glob("*" + SUFFIX)):
            if path == self.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                data = path.read_bytes()
                complete = data[: data.rfind(b"\n") + 1]
                lines = [ln for ln in complete.split(b"\n") if ln]
                if lines:
                    self.append(lines, sync=True)
                    moved += len(lines)
                path.unlink()
            finally:
                os.close(fd)
        return moved

    def close(self) -> None:
        """Release the lock; an empty spool file is removed."""
        self.sync()
        if self._size == 0:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
