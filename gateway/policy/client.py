"""The hot-path OPA client: one POST per decision, a hard deadline, fail closed.

Not `opa-python-client` (see reference/policy-engine.md §3): it retries POSTs on
500, has one global 1.5 s timeout and returns `{}` for an undefined decision.
Here:

- one `aiohttp.ClientSession` with a bounded connector for the app's lifetime;
- one deadline (`timeout`) around everything, including the wait for a free
  connection, so a queue cannot turn into latency;
- no retry on 5xx (OPA's 500s are deterministic evaluation errors); at most
  one immediate retry when a kept-alive connection was closed under us
  (`ServerDisconnectedError`), still inside the same deadline;
- the result is checked against `rego/schema/output.json` (validator compiled
  once) and parsed with `Decision.from_json`;
- every failure (timeout, refused, non-200, undefined, schema or parse error)
  raises `PolicyUnavailable`, and a circuit breaker turns a dead or hung OPA
  (timeouts, refused connections) into an immediate failure instead of a
  deadline's worth of waiting per request.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from gateway.core.model import Decision, DecisionError
from gateway.errors import PolicyUnavailable
from gateway.policy.breaker import CircuitBreaker

log = logging.getLogger(__name__)

_KNOWN_MAX = 256
# Only these mean "OPA is not answering" and count towards opening the breaker;
# a 500 or a malformed answer is a policy bug, and OPA is up.
_TRANSPORT_FAILURES = frozenset({"timeout", "unreachable"})


def _inline_refs(node: Any, root: Any, seen: tuple[str, ...] = ()) -> Any:
    """Replace local `#/...` references by their targets.

    jsonschema resolves every `$ref` through its referencing registry at each use;
    with one ref per action in an 80-entry table that dominated a cache miss.
    Inlined once at load, validation is a plain tree walk. Siblings of a `$ref`
    are kept next to it under `allOf` (draft 2019+ semantics; stricter for 07).
    """
    if isinstance(node, list):
        return [_inline_refs(v, root, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        if ref in seen:
            raise ValueError(f"recursive $ref {ref}")
        target = root
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        resolved = _inline_refs(target, root, (*seen, ref))
        rest = {k: _inline_refs(v, root, seen) for k, v in node.items() if k != "$ref"}
        return {**rest, "allOf": [resolved]} if rest else resolved
    return {k: _inline_refs(v, root, seen) for k, v in node.items()}


def load_output_validator(schema_file: Path) -> Validator | None:
    """Compile the output schema once. A missing file means no schema check
    (Decision.from_json still validates); an unreadable one is a config error."""
    if not schema_file.is_file():
        log.warning(
            "policy output schema %s not found: results are checked by the parser only",
            schema_file,
        )
        return None
    schema = orjson.loads(schema_file.read_bytes())
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    try:
        schema = _inline_refs(schema, schema)
    except (ValueError, KeyError, TypeError):
        log.info("output schema has references that cannot be inlined; validating as written")
    return cls(schema)


class OpaClient:
    """POST {base_url}/v1/data/{decision_path} with {"input": ...}."""

    def __init__(
        self,
        base_url: str,
        decision_path: str,
        *,
        timeout: float,
        pool_size: int = 64,
        validator: Validator | None = None,
        breaker: CircuitBreaker | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.decision_path = decision_path.strip("/")
        self.timeout = timeout
        self.validator = validator
        self.breaker = breaker or CircuitBreaker()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=pool_size, keepalive_timeout=30, ssl=ssl_context or True
            ),
            # The real deadline is asyncio.timeout below; this one only stops
            # aiohttp from applying its 5-minute default.
            timeout=aiohttp.ClientTimeout(total=None),
            json_serialize=lambda o: orjson.dumps(o).decode(),
            raise_for_status=False,
        )
        self.calls = 0
        self.failures = 0
        # Parsing and schema-checking a result costs milliseconds with jsonschema,
        # and most distinct inputs get one of few distinct answers (same roles and
        # clearance, different caller): remember recent good answers by their bytes.
        self.result_memo: OrderedDict[bytes, Decision] = OrderedDict()

    @property
    def session(self) -> aiohttp.ClientSession:
        """Shared with the supervisor/tracker for cheap admin GETs."""
        return self._session

    @property
    def decision_url(self) -> str:
        return f"{self.base_url}/v1/data/{self.decision_path}"

    async def close(self) -> None:
        await self._session.close()

    async def evaluate(self, opa_input: Mapping[str, Any]) -> Decision:
        """Ask OPA for the decision; PolicyUnavailable on anything but a good one."""
        if not self.breaker.allow():
            raise PolicyUnavailable(
                "policy engine unavailable (circuit open)", cause="circuit_open"
            )
        self.calls += 1
        try:
            payload = await self._post(opa_input)
        except PolicyUnavailable as exc:
            self.failures += 1
            if exc.details.get("cause") in _TRANSPORT_FAILURES:
                self.breaker.failure()
            else:
                self.breaker.success()  # OPA is up and answering (badly)
            raise
        except BaseException:
            self.breaker.abandon()  # cancelled: no evidence either way
            raise
        self.breaker.success()
        decision = self.result_memo.get(payload)
        if decision is not None:
            self.result_memo.move_to_end(payload)
            return decision
        try:
            decision = self._parse(self._result(payload))
        except PolicyUnavailable:
            self.failures += 1
            raise
        self.result_memo[payload] = decision
        if len(self.result_memo) > _KNOWN_MAX:
            self.result_memo.popitem(last=False)
        return decision

    async def _post(self, opa_input: Mapping[str, Any]) -> bytes:
        """The body of OPA's 200 answer (PolicyUnavailable otherwise)."""
        body = orjson.dumps({"input": opa_input})
        headers = {"Content-Type": "application/json"}
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout):
                for attempt in (1, 2):
                    try:
                        async with self._session.post(
                            self.decision_url, data=body, headers=headers
                        ) as resp:
                            payload = await resp.read()
                            status = resp.status
                        break
                    except aiohttp.ServerDisconnectedError:
                        if attempt == 2:
                            raise
                        log.debug("OPA closed a kept-alive connection; retrying once")
        except TimeoutError as exc:
            elapsed = (time.monotonic() - started) * 1000
            raise PolicyUnavailable(
                f"policy engine timed out after {elapsed:.0f} ms", cause="timeout"
            ) from exc
        except aiohttp.ClientError as exc:
            raise PolicyUnavailable(
                f"policy engine unreachable: {exc.__class__.__name__}", cause="unreachable"
            ) from exc
        if status != 200:
            raise PolicyUnavailable(
                f"policy engine answered HTTP {status}",
                cause="http_status",
                status=status,
                opa_error=_opa_error(payload),
            )
        return payload

    def _result(self, payload: bytes) -> dict[str, Any]:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise PolicyUnavailable(
                "policy engine answered invalid JSON", cause="bad_json"
            ) from exc
        if not isinstance(doc, dict) or "result" not in doc:
            raise PolicyUnavailable(
                f"policy decision {self.decision_path} is undefined", cause="undefined"
            )
        result = doc["result"]
        if not isinstance(result, dict):
            raise PolicyUnavailable("policy result is not an object", cause="malformed")
        return result

    def _parse(self, raw: dict[str, Any]) -> Decision:
        if self.validator is not None:
            error = next(iter(self.validator.iter_errors(raw)), None)
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(root)"
                raise PolicyUnavailable(
                    f"policy result violates output schema at {where}: {error.message}",
                    cause="schema",
                )
        try:
            return Decision.from_json(raw)
        except DecisionError as exc:
            raise PolicyUnavailable(f"policy result unusable: {exc}", cause="malformed") from exc


def _opa_error(payload: bytes) -> str:
    """OPA's JSON error (code: message), kept short for logs and audit."""
    try:
        err = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode("utf-8", "replace")
    if isinstance(err, dict):
        return f"{err.get('code', '')}: {str(err.get('message', ''))[:200]}"
    return ""
