"""JSON Patch (RFC 6902) bodies read as the field writes and reads they are.

A patch names the fields it touches in strings (`"path": "/bank_card"`), so a
guard that judges a body by its keys sees only `op`, `path` and `value`. This
module turns a patch into what the write guard understands:

- `writes(ops)`: one tree with every field the patch changes, as if it had been
  sent as a merge body: `add`/`replace` put `value` at `path`; `remove` marks
  `path`; `move` marks both `from` and `path`; `copy` marks `path`. The marker
  (`CHANGED`) is no value, so it is never a placeholder, only a field written.
- `reads(ops)`: the pointers whose current value the patch depends on or carries
  elsewhere: `test` (the whole patch fails unless the field equals a guess: an
  oracle) and the `from` of `copy`/`move` (the value lands in another field).

A body is a patch when it is a non-empty list whose members are all objects with
an `op` and a `path` (whatever its Content-Type says: lenient CRMs apply patches
sent as plain JSON). Array indexes (`/holdings/0`, `/holdings/-`) become list
levels, so catalog key paths (`holdings.item.name`) match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CHANGED", "Operation", "is_index", "is_patch", "operations", "reads", "writes"]

OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})
MAX_OPS = 1000


class _Changed:
    """A field the patch changes without a value of its own (remove, move, copy)."""

    def __repr__(self) -> str:
        return "CHANGED"


CHANGED: Any = _Changed()
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Operation:
    op: str
    path: tuple[str, ...]
    source: tuple[str, ...] | None  # `from`
    value: Any
    has_value: bool


def is_patch(body: Any) -> bool:
    """A non-empty list of objects that each carry `op` and `path`."""
    return (
        isinstance(body, list)
        and bool(body)
        and all(isinstance(item, Mapping) and "op" in item and "path" in item for item in body)
    )


def pointer(text: Any) -> tuple[str, ...] | None:
    """RFC 6901 tokens (`/a~1b/0` -> `a/b`, `0`); a leading `/` is optional (lenient
    CRMs accept `bank_card`). None when `text` is not a string."""
    if not isinstance(text, str):
        return None
    body = text[1:] if text.startswith("/") else text
    if body == "":
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in body.split("/"))


def operations(body: Sequence[Mapping[str, Any]]) -> list[Operation] | None:
    """The patch's operations, or None when one of them cannot be read for certain
    (an unknown op, a pointer that is no string, a missing `from`, too many ops)."""
    if len(body) > MAX_OPS:
        return None
    out: list[Operation] = []
    for item in body:
        op = item.get("op")
        path = pointer(item.get("path"))
        if not isinstance(op, str) or op.lower() not in OPS or path is None:
            return None
        op = op.lower()
        source = None
        if op in ("move", "copy"):
            source = pointer(item.get("from"))
            if source is None:
                return None
        out.append(Operation(op, path, source, item.get("value"), "value" in item))
    return out


def writes(ops: Sequence[Operation]) -> Any:
    """Every field the patch changes, merged into one tree (see the module doc).

    Two operations on one field keep both values (a list), so a placeholder
    written first and overwritten later is still seen."""
    tree: Any = _MISSING
    for op in ops:
        if op.op in ("add", "replace"):
            tree = _merge(tree, _build(op.path, op.value))
        elif op.op == "move":
            assert op.source is not None
            tree = _merge(tree, _build(op.source, CHANGED))
            tree = _merge(tree, _build(op.path, CHANGED))
        elif op.op in ("remove", "copy"):
            tree = _merge(tree, _build(op.path, CHANGED))
    return {} if tree is _MISSING else tree


def reads(ops: Sequence[Operation]) -> list[tuple[str, tuple[str, ...]]]:
    """(op, pointer) for every field whose current value the patch uses."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for op in ops:
        if op.op == "test":
            out.append(("test", op.path))
        elif op.source is not None:
            out.append((op.op, op.source))
    return out


def is_index(token: str) -> bool:
    return token == "-" or token.isdigit()  # noqa: S105 - a pointer token, no secret


def _build(path: tuple[str, ...], value: Any) -> Any:
    """`value` at `path`: keys become objects, array indexes one-item lists."""
    node = value
    for token in reversed(path):
        node = [node] if is_index(token) else {token: node}
    return node


def _merge(old: Any, new: Any) -> Any:
    if old is _MISSING:
        return new
    if isinstance(old, dict) and isinstance(new, dict):
        out = dict(old)
        for k, v in new.items():
            out[k] = _merge(out.get(k, _MISSING), v)
        return out
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    return [*(old if isinstance(old, list) else [old]), *(new if isinstance(new, list) else [new])]
