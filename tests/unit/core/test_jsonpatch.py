"""JSON Patch bodies read as field writes and reads (gateway.core.jsonpatch)."""

from __future__ import annotations

from gateway.core.jsonpatch import CHANGED, is_patch, operations, pointer, reads, writes


def test_pointer_tokens_are_unescaped_and_the_slash_is_optional() -> None:
    assert pointer("/a~1b/c~0d/0") == ("a/b", "c~d", "0")
    assert pointer("bank_card") == ("bank_card",)
    assert pointer("") == ()
    assert pointer(3) is None


def test_a_patch_is_a_list_of_objects_with_op_and_path() -> None:
    assert is_patch([{"op": "remove", "path": "/a"}])
    assert not is_patch([])
    assert not is_patch([{"op": "note", "text": "x"}])
    assert not is_patch({"op": "remove", "path": "/a"})


def test_unreadable_operations_make_the_patch_unreadable() -> None:
    assert operations([{"op": "frobnicate", "path": "/a"}]) is None
    assert operations([{"op": "copy", "path": "/a"}]) is None  # no from
    assert operations([{"op": "add", "path": ["a"], "value": 1}]) is None


def test_writes_merge_every_changed_field() -> None:
    ops = operations(
        [
            {"op": "replace", "path": "/mobile", "value": "139****5678"},
            {"op": "add", "path": "/holdings/-", "value": {"name": "x"}},
            {"op": "move", "from": "/a/0/b", "path": "/c"},
            {"op": "replace", "path": "/mobile", "value": "13800001111"},
            {"op": "remove", "path": "/d"},
            {"op": "test", "path": "/e", "value": 1},
        ]
    )
    assert ops is not None
    assert writes(ops) == {
        "mobile": ["139****5678", "13800001111"],  # both values are judged
        "holdings": [{"name": "x"}],
        "a": [{"b": CHANGED}],
        "c": CHANGED,
        "d": CHANGED,
    }
    assert reads(ops) == [("move", ("a", "0", "b")), ("test", ("e",))]


def test_replacing_the_whole_document_writes_its_keys() -> None:
    ops = operations([{"op": "replace", "path": "", "value": {"bank_card": "1"}}])
    assert ops is not None
    assert writes(ops) == {"bank_card": "1"}
