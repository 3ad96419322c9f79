"""JSON-lines sinks: stdout, and a file with size-based rotation.

Lines are written byte for byte as chained, so a file sink is a verifiable
archive (`crm-gateway audit verify FILE`). The file sink fsyncs each batch
before it reports success.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from gateway.audit.sinks.base import SinkError


class StdoutSink:
    name = "stdout"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._out = stream if stream is not None else sys.stdout.buffer

    async def send(self, lines: Sequence[bytes]) -> None:
        try:
            self._out.write(b"\n".join(lines) + b"\n")
            self._out.flush()
        except (OSError, ValueError) as exc:
            raise SinkError(f"stdout: {exc}") from exc

    async def close(self) -> None:
        return None


class FileSink:
    """Appends to `path`; past `max_bytes` renames path -> path.1 -> ... -> path.N.

    Several workers may share the file (O_APPEND, one write per batch); a worker
    notices another's rotation by inode and reopens the new file.
    """

    name = "file"

    def __init__(self, path: Path, *, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max = max_bytes
        self._backups = backups
        self._fd: int | None = None
        self._size = 0

    def _open(self) -> int:
        if self._fd is not None and self._rotated_elsewhere(self._fd):
            os.close(self._fd)  # another worker rotated the file: follow the new one
            self._fd = None
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._size = os.fstat(self._fd).st_size
        return self._fd

    def _rotated_elsewhere(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino != os.fstat(fd).st_ino
        except FileNotFoundError:
            return True

    def _rotate(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for n in range(self._backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    async def send(self, lines: Sequence[bytes]) -> None:
        """Write and fsync in a worker thread: the event loop serves other requests
        while the disk confirms (the flusher awaits each batch, so order holds)."""
        data = b"\n".join(lines) + b"\n"
        await asyncio.to_thread(self._append, data)

    def _append(self, data: bytes) -> None:
        try:
            fd = self._open()
            if self._size and self._size + len(data) > self._max:
                self._rotate()
                fd = self._open()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            self._size += len(data)
        except OSError as exc:
            raise SinkError(f"{self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
