"""Every stable error code is documented (docs/errors.md, `explain --error`)."""

from __future__ import annotations

import importlib
import pkgutil

import gateway
from gateway import errors
from gateway.core.error_docs import ERROR_DOCS, doc_line, render_markdown
from gateway.settings import REPO_ROOT


def _all_error_classes() -> list[type[errors.GatewayError]]:
    # Import every gateway module so stage errors (identity, access, paths) are found.
    for mod in pkgutil.walk_packages(gateway.__path__, "gateway."):
        if not mod.name.endswith("__main__"):
            importlib.import_module(mod.name)
    out: list[type[errors.GatewayError]] = []
    todo: list[type[errors.GatewayError]] = [errors.GatewayError]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_error_code_is_documented() -> None:
    classes = _all_error_classes()
    codes = {cls.code for cls in classes}
    assert {c.code for c in vars(errors).values() if isinstance(c, type)
            and issubclass(c, errors.GatewayError)} <= codes  # fmt: skip
    missing = sorted(codes - set(ERROR_DOCS))
    assert not missing, f"add these codes to gateway/core/error_docs.py: {missing}"


def test_documented_status_matches_the_class() -> None:
    for cls in _all_error_classes():
        doc = ERROR_DOCS[cls.code]
        if doc.status != "-" and cls not in (errors.GatewayError, errors.ServerError):
            assert str(cls.status) in doc.status.split("/"), (cls.__name__, doc.status)


def test_docs_errors_md_is_rendered_from_the_table() -> None:
    text = (REPO_ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert text == render_markdown(), "run: python -m gateway.core.error_docs > docs/errors.md"
    for code in ERROR_DOCS:
        assert f"`{code}`" in text


def test_doc_line() -> None:
    assert doc_line("protected_field_filter").startswith("403 protected_field_filter: ")
    assert "not a gateway error code" in doc_line("nope")
