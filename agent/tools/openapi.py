"""Tools from an OpenAPI 3 document (KAIWA_OPENAPI_*).

Each allowed operation id becomes one raw function tool named after it. Its parameters
are the operation's path and query parameters (flat, by name; header and cookie
parameters are left out, so the model never handles credentials) plus, when the operation
takes a JSON body, a `body` object with the body's schema. Local `$ref`s are inlined.
Calls go through one `httpx.AsyncClient` per session with the configured auth header;
HTTP errors and network failures become ToolErrors the model can say. Tools are guarded
like ours (`kaiwa_tool`: timeout, cancellation, logging).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import yaml
from livekit.agents import RunContext, ToolError, llm

from ..settings import Settings
from .runtime import kaiwa_tool

logger = logging.getLogger("kaiwa.tools.openapi")

METHODS = ("get", "put", "post", "delete", "patch")
MAX_RESULT_CHARS = 4000  # what we hand the model; long bodies are cut
_NAME = re.compile(r"[^A-Za-z0-9_]")


class SpecError(ValueError):
    pass


@dataclass
class Operation:
    operation_id: str
    method: str
    path: str
    summary: str
    path_params: list[str] = field(default_factory=list)
    query_params: list[str] = field(default_factory=list)
    has_body: bool = False
    parameters_schema: dict[str, Any] = field(default_factory=dict)

    @property
    def tool_name(self) -> str:
        return _NAME.sub("_", self.operation_id)[:64]

    def raw_schema(self) -> dict[str, Any]:
        return {
            "name": self.tool_name,
            "description": self.summary,
            "parameters": self.parameters_schema,
        }


def load_spec_text(text: str) -> dict[str, Any]:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError:
        spec = yaml.safe_load(text)
    if not isinstance(spec, dict) or not str(spec.get("openapi", "")).startswith("3"):
        raise SpecError("not an OpenAPI 3 document")
    return spec


async def load_spec(source: str, client: httpx.AsyncClient) -> dict[str, Any]:
    if source.startswith(("http://", "https://")):
        r = await client.get(source)
        r.raise_for_status()
        return load_spec_text(r.text)
    text = await asyncio.to_thread(Path(source).read_text, encoding="utf-8")
    return load_spec_text(text)


def _resolve(node: Any, spec: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline local $refs ("#/components/..."); a cycle becomes a plain object."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if not ref.startswith("#/") or ref in seen:
                return {"type": "object"}
            target: Any = spec
            for part in ref[2:].split("/"):
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
            return _resolve(target, spec, (*seen, ref))
        return {k: _resolve(v, spec, seen) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, spec, seen) for v in node]
    return node


def _clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Keep what function calling understands (Gemini rejects some JSON-schema keys)."""
    keep = {
        "type", "description", "enum", "items", "properties", "required", "format",
        "minimum", "maximum", "minLength", "maxLength", "nullable", "anyOf", "default",
        "title",
    }  # fmt: skip
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k not in keep:
            continue
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: _clean_schema(s) for name, s in v.items() if isinstance(s, dict)}
        elif k == "items" and isinstance(v, dict):
            out[k] = _clean_schema(v)
        elif k == "anyOf" and isinstance(v, list):
            out[k] = [_clean_schema(s) for s in v if isinstance(s, dict)]
        else:
            out[k] = v
    return out


def operations(spec: dict[str, Any], allowed: list[str]) -> list[Operation]:
    """The allowed operations, in the allow-list's order; unknown ids are an error."""
    found: dict[str, Operation] = {}
    for path, item in (spec.get("paths") or {}).items():
        item = _resolve(item, spec)
        common = item.get("parameters") or []
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, dict) or op.get("operationId") not in allowed:
                continue
            found[op["operationId"]] = _operation(spec, path, method, op, common)
    missing = [op for op in allowed if op not in found]
    if missing:
        raise SpecError(f"operation ids not in the spec: {', '.join(missing)}")
    return [found[op] for op in allowed]


def _operation(
    spec: dict[str, Any], path: str, method: str, op: dict[str, Any], common: list[Any]
) -> Operation:
    o = Operation(
        operation_id=op["operationId"],
        method=method.upper(),
        path=path,
        summary=(op.get("summary") or op.get("description") or op["operationId"]).strip(),
    )
    props: dict[str, Any] = {}
    required: list[str] = []
    by_key = {(p.get("in"), p.get("name")): p for p in [*common, *(op.get("parameters") or [])]}
    for (where, name), p in by_key.items():
        # header/cookie parameters are not offered: the model must not set credentials;
        # the configured auth header is sent on every call instead
        if where not in ("path", "query") or not name:
            continue
        schema = _clean_schema(p.get("schema") or {"type": "string"})
        if p.get("description"):
            schema["description"] = p["description"]
        props[name] = schema
        if where == "path" or p.get("required"):
            required.append(name)
        (o.path_params if where == "path" else o.query_params).append(name)
    body = (op.get("requestBody") or {}).get("content", {}).get("application/json")
    if body is not None:
        o.has_body = True
        schema = _clean_schema(_resolve(body.get("schema") or {"type": "object"}, spec))
        schema.setdefault("description", "The JSON request body.")
        props["body"] = schema
        if (op.get("requestBody") or {}).get("required"):
            required.append("body")
    o.parameters_schema = {"type": "object", "properties": props, "required": required}
    return o


class OpenAPIToolset(llm.Toolset):
    """Loads the spec at session start (`setup`) and offers one tool per allowed operation."""

    def __init__(
        self,
        *,
        spec: str,
        base_url: str,
        operation_ids: list[str],
        auth_header: tuple[str, str] | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        super().__init__(id="openapi")
        self.spec_source = spec
        self.base_url = base_url.rstrip("/")
        self.operation_ids = operation_ids
        self.timeout_s = timeout_s
        headers = {auth_header[0]: auth_header[1]} if auth_header else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout_s)

    async def setup(self) -> OpenAPIToolset:
        await super().setup()
        try:
            spec = await load_spec(self.spec_source, self._client)
            ops = operations(spec, self.operation_ids)
        except Exception as e:
            logger.error("OpenAPI spec %s unusable; no tools from it: %r", self.spec_source, e)
            self._tools = []
            return self
        self._tools = [self._make_tool(op) for op in ops]
        logger.info("OpenAPI tools: %s", [t.id for t in self._tools])
        return self

    def _make_tool(self, op: Operation) -> llm.Tool:
        async def call(raw_arguments: dict[str, Any], ctx: RunContext) -> Any:
            return await self.call(op, raw_arguments)

        # the guard's timeout is a little longer than httpx's, so httpx's message wins
        return kaiwa_tool(raw_schema=op.raw_schema(), timeout_s=self.timeout_s + 1)(call)

    async def call(self, op: Operation, args: dict[str, Any]) -> Any:
        path = op.path
        for name in op.path_params:
            if args.get(name) in (None, ""):
                raise ToolError(f"The {name} is missing; ask the caller for it.")
            path = path.replace("{" + name + "}", quote(str(args[name]), safe=""))
        query = {n: _scalar(args[n]) for n in op.query_params if args.get(n) is not None}
        body = args.get("body") if op.has_body else None
        what = op.operation_id.replace("_", " ")
        try:
            r = await self._client.request(
                op.method,
                self.base_url + path,
                params=query,
                json=body if op.has_body and body is not None else None,
            )
        except httpx.TimeoutException:
            raise ToolError(
                f"The {what} service didn't answer in time. Offer to try again later."
            ) from None
        except httpx.HTTPError as e:
            logger.warning("OpenAPI %s failed: %r", op.operation_id, e)
            raise ToolError(
                f"The {what} service can't be reached right now. Offer to try again later."
            ) from None
        if r.status_code >= 400:
            raise ToolError(_http_error(what, r))
        if not r.content:
            return {"ok": True, "status": r.status_code}
        try:
            data: Any = r.json()
        except ValueError:
            data = r.text
        text = json.dumps(data, ensure_ascii=False) if not isinstance(data, str) else data
        if len(text) > MAX_RESULT_CHARS:
            return text[:MAX_RESULT_CHARS] + " …(cut)"
        return data

    async def aclose(self) -> None:
        await super().aclose()
        await self._client.aclose()


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    return value


def _http_error(what: str, r: httpx.Response) -> str:
    detail = ""
    try:
        body = r.json()
        if isinstance(body, dict):
            d = body.get("detail") or body.get("message") or body.get("error")
            detail = d if isinstance(d, str) else ""
    except ValueError:
        pass
    detail = f" It said: {detail[:200]}" if detail else ""
    if r.status_code == 404:
        return f"The {what} service found nothing for that.{detail}"
    if r.status_code in (400, 422):
        return (
            f"The {what} service refused the request as invalid.{detail} "
            "Check the details with the caller."
        )
    if r.status_code in (401, 403):
        return f"The {what} service refused access. Tell the caller it can't be done right now."
    if r.status_code == 429 or r.status_code >= 500:
        return (
            f"The {what} service has a problem right now ({r.status_code}). "
            "Offer to try again later."
        )
    return f"The {what} service answered with error {r.status_code}.{detail}"


def build_openapi_toolsets(settings: Settings) -> list[llm.Toolset]:
    if settings.openapi_spec is None or settings.openapi_base_url is None:
        return []
    auth: tuple[str, str] | None = None
    if settings.openapi_auth_header is not None:
        name, _, value = settings.openapi_auth_header.get_secret_value().partition(":")
        auth = (name.strip(), value.strip())
    return [
        OpenAPIToolset(
            spec=settings.openapi_spec,
            base_url=settings.openapi_base_url,
            operation_ids=settings.openapi_operation_ids,
            auth_header=auth,
            timeout_s=settings.tool_timeout_s,
        )
    ]
