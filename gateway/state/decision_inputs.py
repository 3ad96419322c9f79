"""Where the decision-input log lives: hourly counts of distinct policy inputs.

The policy stage hands over batches of `{digest: count}` per hour plus one
value-free document per digest (gateway.policy.input_log builds them); `policy
impact` reads a window back. Three twins with one interface:

- Redis (`redis.url` set, shared by every replica): a hash per hour
  (`dinputs:<hour>`, HINCRBY) and a string per digest (`dinput:<digest>`), both
  expiring after the retention period, so the log is bounded by time and, per
  hour, by the number of distinct inputs each process records;
- JSONL files, one per UTC day under `policy.input_log_dir`, days older than the
  retention deleted on write (single host without Redis);
- memory (unit tests).

Hours are integers: epoch seconds // 3600 (UTC).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.state.client import connect
from gateway.state.keys import decision_input_doc, decision_inputs

Doc = dict[str, Any]


class InputLogUnavailable(Exception):
    """The log's store could not be read or written."""


class DecisionInputStore(Protocol):
    async def add(self, counts: Mapping[tuple[int, str], int], docs: Mapping[str, Doc]) -> None: ...

    async def read(self, since_hour: int, until_hour: int) -> tuple[dict[str, int], dict[str, Doc]]:
        """(digest -> requests, digest -> document) over the hours [since, until]."""
        ...

    async def close(self) -> None: ...


def current_hour(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // 3600)


class MemoryDecisionInputStore:
    def __init__(self) -> None:
        self.counts: dict[tuple[int, str], int] = {}
        self.docs: dict[str, Doc] = {}

    async def add(self, counts: Mapping[tuple[int, str], int], docs: Mapping[str, Doc]) -> None:
        self.docs.update(docs)
        for k, n in counts.items():
            self.counts[k] = self.counts.get(k, 0) + n

    async def read(self, since_hour: int, until_hour: int) -> tuple[dict[str, int], dict[str, Doc]]:
        out: dict[str, int] = {}
        for (hour, digest), n in self.counts.items():
            if since_hour <= hour <= until_hour:
                out[digest] = out.get(digest, 0) + n
        return out, {d: self.docs[d] for d in out if d in self.docs}

    async def close(self) -> None:
        return None


class RedisDecisionInputStore:
    def __init__(self, client: aioredis.Redis, retention_days: int, *, owns: bool = True) -> None:
        self._r = client
        self._ttl = retention_days * 86_400
        self._owns = owns

    async def add(self, counts: Mapping[tuple[int, str], int], docs: Mapping[str, Doc]) -> None:
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for digest, doc in docs.items():
                    pipe.set(decision_input_doc(digest), orjson.dumps(doc), ex=self._ttl)
                for hour in {h for h, _ in counts}:
                    key = decision_inputs(hour)
                    for (h, digest), n in counts.items():
                        if h == hour:
                            pipe.hincrby(key, digest, n)
                    pipe.expire(key, self._ttl)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise InputLogUnavailable(str(exc)) from exc

    async def read(self, since_hour: int, until_hour: int) -> tuple[dict[str, int], dict[str, Doc]]:
        out: dict[str, int] = {}
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for hour in range(since_hour, until_hour + 1):
                    pipe.hgetall(decision_inputs(hour))
                rows: list[dict[bytes, bytes]] = await pipe.execute()
            for row in rows:
                for digest, n in row.items():
                    d = digest.decode()
                    out[d] = out.get(d, 0) + int(n)
            digests = sorted(out)
            raw: list[Any] = (
                await self._r.mget([decision_input_doc(d) for d in digests]) if digests else []
            )
        except (RedisError, OSError) as exc:
            raise InputLogUnavailable(str(exc)) from exc
        docs = {d: orjson.loads(v) for d, v in zip(digests, raw, strict=True) if v is not None}
        return out, docs

    async def close(self) -> None:
        if self._owns:
            await self._r.aclose()


def _day(hour: int) -> str:
    return datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%d")


class FileDecisionInputStore:
    """`inputs-YYYY-MM-DD.jsonl`: lines `{"h": hour, "d": digest, "n": count, "i"?: doc}`;
    a document is written once per file (the first line of its digest that day)."""

    def __init__(self, directory: Path, retention_days: int) -> None:
        self.directory = directory
        self._retention = retention_days
        self._written: dict[str, set[str]] = {}  # day -> digests whose doc is in the file

    def _path(self, day: str) -> Path:
        return self.directory / f"inputs-{day}.jsonl"

    async def add(self, counts: Mapping[tuple[int, str], int], docs: Mapping[str, Doc]) -> None:
        await asyncio.to_thread(self._add, dict(counts), dict(docs))

    def _add(self, counts: dict[tuple[int, str], int], docs: dict[str, Doc]) -> None:
        by_day: dict[str, list[bytes]] = {}
        for (hour, digest), n in sorted(counts.items()):
            day = _day(hour)
            seen = self._written.setdefault(day, set())
            line: dict[str, Any] = {"h": hour, "d": digest, "n": n}
            if digest not in seen and digest in docs:
                line["i"] = docs[digest]
                seen.add(digest)
            by_day.setdefault(day, []).append(orjson.dumps(line))
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for day, lines in by_day.items():
                fd = os.open(self._path(day), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, b"\n".join(lines) + b"\n")
                finally:
                    os.close(fd)
            self._prune()
        except OSError as exc:
            raise InputLogUnavailable(f"{self.directory}: {exc.strerror}") from exc

    def _prune(self) -> None:
        oldest = _day(current_hour() - self._retention * 24)
        for path in self.directory.glob("inputs-*.jsonl"):
            if path.stem.removeprefix("inputs-") < oldest:
                path.unlink(missing_ok=True)
        for day in [d for d in self._written if d < oldest]:
            del self._written[day]

    async def read(self, since_hour: int, until_hour: int) -> tuple[dict[str, int], dict[str, Doc]]:
        return await asyncio.to_thread(self._read, since_hour, until_hour)

    def _read(self, since_hour: int, until_hour: int) -> tuple[dict[str, int], dict[str, Doc]]:
        out: dict[str, int] = {}
        docs: dict[str, Doc] = {}
        first, last = _day(since_hour), _day(until_hour)
        for path in sorted(self.directory.glob("inputs-*.jsonl")):
            if not first <= path.stem.removeprefix("inputs-") <= last:
                continue
            with path.open("rb") as fh:
                for raw in fh:
                    try:
                        line = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        continue  # a torn last line after a crash
                    if not isinstance(line, dict):
                        continue
                    digest, doc = str(line.get("d", "")), line.get("i")
                    if isinstance(doc, dict):
                        docs.setdefault(digest, doc)
                    hour, n = line.get("h"), line.get("n")
                    if not (isinstance(hour, int) and isinstance(n, int)):
                        continue
                    if since_hour <= hour <= until_hour:
                        out[digest] = out.get(digest, 0) + n
        return out, {d: docs[d] for d in out if d in docs}

    async def close(self) -> None:
        return None


def open_decision_input_store(
    redis_url: str, directory: Path, retention_days: int
) -> DecisionInputStore:
    if redis_url:
        return RedisDecisionInputStore(connect(redis_url, timeout=5.0), retention_days)
    return FileDecisionInputStore(directory, retention_days)
