"""Identifiers carried encoded: base64, base64url, hex, in bodies, keys' values and cookies.

Systems pass identifiers around encoded (`NjIxNzAwMzQxMDA4Nzc0OTU0Nw==` in a
token, a cookie, an export reference, `36323137...` in a hex dump), and every
client can decode them; a digit scan sees letters. The scan decodes base64,
base64url and hex runs that decode to text and looks for identifiers in that
text; a run that holds one is masked whole. Tried in a visible customer's notes,
under an unnamed key, in a Set-Cookie value, and as a write value.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.conftest import OpaProcess
from tests.integration.gateway_harness import Gateway
from tests.integration.policy_http_harness import headers
from tests.security.hostile_upstream import VISIBLE
from tests.security.records_harness import opa_process, records_gateway, serve
from tests.security.test_writes import crm, send  # noqa: F401 - fixture
from tests.security.test_writes import gw as write_gw  # noqa: F401 - fixture
from tests.security.write_upstream import WriteCrm

pytestmark = pytest.mark.integration

CUSTOMER = VISIBLE[0]
CARD = CUSTOMER["bank_card"]  # above customer service's L2


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


ENCODINGS: dict[str, Callable[[str], str]] = {
    "base64": _b64,
    "base64 unpadded": lambda v: _b64(v).rstrip("="),
    "base64url": lambda v: base64.urlsafe_b64encode(f"card:{v}?".encode()).decode(),
    "base64 of a sentence": lambda v: _b64(f"客户卡号 {v}，已核对"),
    "hex": lambda v: v.encode().hex(),
    "hex upper": lambda v: v.encode().hex().upper(),
    "hex of a sentence": lambda v: f"卡号 {v}".encode().hex(),
}


def decodings(text: str) -> list[str]:
    """Every base64 / hex run of `text` decoded (what a client could do)."""
    import contextlib
    import re

    out = [text]
    for run in re.findall(r"[A-Za-z0-9+/_-]{8,}={0,2}", text):
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            with contextlib.suppress(ValueError):
                out.append(decode(run + "=" * (-len(run) % 4)).decode("utf-8", "replace"))
        with contextlib.suppress(ValueError):
            out.append(bytes.fromhex(run).decode("utf-8", "replace"))
    return out


def test_every_encoding_decodes_to_the_card() -> None:
    for name, encode in ENCODINGS.items():
        assert any(CARD in d for d in decodings(encode(CARD))), name


@pytest.fixture(scope="module")
def opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    yield from opa_process(tmp_path_factory.mktemp("rego") / "open")


@pytest.fixture
async def gw(tmp_path: Path, opa: OpaProcess) -> AsyncIterator[Gateway]:
    async def page(request: web.Request) -> web.Response:
        encoded = ENCODINGS[request.match_info["encoding"]](CARD)
        row = dict(CUSTOMER, notes=f"参考 {encoded} 已核对", x_ref=encoded)
        resp = web.Response(body=orjson.dumps({"results": [row]}), content_type="application/json")
        if request.query.get("cookie"):
            resp.headers["Set-Cookie"] = f"last={encoded}; Path=/"
        return resp

    app = web.Application()
    app.router.add_get("/encoded/{encoding}", page)
    runner, url = await serve(app)
    g = await records_gateway(tmp_path, url, opa)
    yield g
    await g.stop()
    await runner.cleanup()


async def _get(gw: Gateway, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + path, headers=headers("cs")) as r,
    ):
        return r.status, (await r.read()).decode(), r.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_encoded_identifiers_in_bodies_are_masked(gw: Gateway, encoding: str) -> None:
    status, raw, _ = await _get(gw, f"/encoded/{encoding}")
    assert status == 200, raw[:300]
    row = orjson.loads(raw)["results"][0]
    assert row["id"] == CUSTOMER["id"]
    for text in (row["notes"], str(row.get("x_ref"))):
        assert not any(CARD in d for d in decodings(text)), (encoding, text)


@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_encoded_identifiers_in_cookies_never_leave(gw: Gateway, encoding: str) -> None:
    """A card in a cookie is outside every record: the response is refused."""
    status, raw, cookie = await _get(gw, f"/encoded/{encoding}?cookie=1")
    assert not any(CARD in d for d in decodings(raw + cookie)), (encoding, raw)
    assert status == 403, raw[:300]
    assert orjson.loads(raw)["error"] == "blocked_by_policy"


@pytest.mark.parametrize("encoding", list(ENCODINGS))
async def test_encoded_cards_never_reach_the_crm(
    write_gw: Gateway,  # noqa: F811
    crm: WriteCrm,  # noqa: F811
    encoding: str,
) -> None:
    body = orjson.dumps({"x_ref": ENCODINGS[encoding]("6222600260001072444")})
    hdrs = [("Content-Type", "application/json")]
    status, answer = await send(write_gw, "PATCH", "/api/customers/C100", "cs", hdrs, body)
    assert status == 403, (encoding, answer)
    assert crm.count("C100") == 0


async def test_ordinary_tokens_and_hashes_pass(gw: Gateway) -> None:
    """Control: the scan decodes runs, it does not mask every long token."""
    from gateway.core.detectors import detect

    for text in ("session 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                 "ref dGhpcyBpcyBub3QgYSBudW1iZXI=", "订单 ORD20240517ABCDEF01"):  # fmt: skip
        assert detect(text) == [], text
