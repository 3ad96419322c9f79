"""Which policy is OPA running right now? Tracked cheaply, once a second.

The revision has up to three parts joined with `+`:

- the data revision, `data.crm.config.revision` (GET /v1/data/<revision_path>),
  which the security team bumps on every release and the policy echoes in
  every decision;
- managed mode: the first 8 hex digits of a SHA-256 over the rego directory's
  files (only re-read when a file's mtime or size changes), so an edit that
  forgot to bump the revision is still visible and still purges the cache;
- the active bundle revisions (`name@revision`, from the `.manifest` of each
  bundle OPA loaded), read from the same request with `?provenance=true`: this
  needs no status plugin, unlike GET /v1/status (which answers 500 without
  one, and carries all of OPA's Prometheus metrics). A directory served with
  `--watch` (managed mode) has no bundles, so that part is absent there.

On a change the tracker calls `on_change(new)` (the engine purges its cache).
Because OPA's `--watch` reload can lag the file write by a few milliseconds, the
callback also fires once more on the poll after a change, so a decision computed
by the old policy in that gap cannot outlive one poll interval in the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)

# What OPA reads from a bundle directory.
_DATA_FILES = frozenset({"data.json", "data.yaml", "data.yml", ".manifest"})


class DirectoryHash:
    """Content hash of the files OPA loads from a directory; cheap when unchanged."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stamp: tuple[tuple[str, int, int], ...] | None = None
        self._hash = ""

    def _files(self) -> list[Path]:
        """What the supervisor's OPA loads from the directory (bundle mode)."""
        return sorted(
            p
            for p in self.root.rglob("*")
            if p.is_file() and (p.suffix == ".rego" or p.name in _DATA_FILES)
        )

    def compute(self) -> str:
        files = self._files()
        stamp: list[tuple[str, int, int]] = []
        for p in files:
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            stamp.append((str(p.relative_to(self.root)), st.st_mtime_ns, st.st_size))
        key = tuple(stamp)
        if key == self._stamp:
            return self._hash
        h = hashlib.sha256()
        for rel, _, _ in stamp:
            try:
                content = (self.root / rel).read_bytes()
            except FileNotFoundError:
                continue
            h.update(rel.encode() + b"\0" + len(content).to_bytes(8, "big") + content)
        self._stamp = key
        self._hash = h.hexdigest()
        return self._hash


class RevisionTracker:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        revision_path: str,
        *,
        rego_dir: Path | None,
        interval: float = 1.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self.revision_path = revision_path.strip("/")
        self._dir = DirectoryHash(rego_dir) if rego_dir is not None else None
        self.interval = interval
        self._on_change = on_change
        self.data_revision = ""
        self.revision = ""
        self.changes = 0
        self._settle = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="policy-revision")

    def poke(self) -> None:
        """Refresh soon (e.g. a decision carried a revision we have not seen)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval)
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # a tracker crash must not stop tracking
                log.exception("policy revision refresh failed")

    async def refresh(self) -> str:
        doc = await self._get_json(f"/v1/data/{self.revision_path}?provenance=true")
        if not isinstance(doc, dict):
            return self.revision  # OPA unreachable: keep the last known revision
        value = doc.get("result")
        data_rev = str(value) if value is not None else "unversioned"
        parts = [data_rev]
        if self._dir is not None:
            digest = await asyncio.to_thread(self._dir.compute)
            parts.append(digest[:8])
        parts.extend(_bundle_revisions(doc.get("provenance")))
        new = "+".join(p for p in parts if p)
        self.data_revision = data_rev
        if new != self.revision:
            old, self.revision = self.revision, new
            self.changes += 1
            self._settle = True
            if old:
                log.warning("policy revision changed: %s -> %s", old, new)
            if self._on_change is not None:
                self._on_change(new)
        elif self._settle:
            self._settle = False
            if self._on_change is not None:
                self._on_change(new)
        return self.revision

    async def _get_json(self, path: str) -> Any:
        try:
            async with asyncio.timeout(1.0):
                async with self._session.get(f"{self.base_url}{path}") as resp:
                    if resp.status != 200:
                        return None
                    return orjson.loads(await resp.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def _bundle_revisions(provenance: Any) -> list[str]:
    bundles = provenance.get("bundles") if isinstance(provenance, dict) else None
    if not isinstance(bundles, dict):
        return []
    return [
        f"{name}@{b.get('revision', '')}"
        for name, b in sorted(bundles.items())
        if isinstance(b, dict) and b.get("revision")  # plain directories have none
    ]
