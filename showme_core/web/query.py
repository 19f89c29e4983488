"""Strict query strings: an ``/api/v1`` request may carry only the query parameters its
operation lists in the OpenAPI document; any other is refused with ``422 invalid_input`` naming
it, like any other bad input.

A misspelt ``limt=10`` or ``incident=...`` silently ignored gives a CAD integration the wrong
page and no hint why. The document is the only list of what each route takes, so the two cannot
drift: adding a parameter to a route means describing it. An operation with a free-form query
parameter (``style: form``, ``explode``, an object schema: the SMS delivery reports, whose
providers send what they like) takes any name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from showme_core.web.errors import error_response
from showme_core.web.openapi import build_document, free_form

API_PREFIX = "/api/v1/"


@dataclass(frozen=True)
class QueryRule:
    """The query parameters one operation takes; ``None``: any."""

    path: re.Pattern[str]
    method: str
    names: frozenset[str] | None


def rules_of(document: dict[str, Any]) -> list[QueryRule]:
    """What each operation of ``document`` takes in its query string."""
    rules = []
    for template, operations in document["paths"].items():
        pattern, _format, _convertors = compile_path(template)
        for method, operation in operations.items():
            query = [p for p in operation.get("parameters", []) if p["in"] == "query"]
            names = None if any(map(free_form, query)) else frozenset(p["name"] for p in query)
            rules.append(QueryRule(pattern, method.upper(), names))
    return rules


@cache
def _rules() -> tuple[QueryRule, ...]:
    return tuple(rules_of(build_document()))


def unknown_parameters(method: str, path: str, query_string: bytes) -> tuple[list[str], list[str]]:
    """The parameters of ``query_string`` that the operation for ``method`` and ``path`` does not
    take, and those it does (nothing unknown for a path or method the document does not
    describe: the router answers those)."""
    method = "GET" if method == "HEAD" else method
    for rule in _rules():
        if rule.method == method and rule.path.match(path):
            if rule.names is None:
                return [], []
            pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
            given = [name for name, _value in pairs]
            unknown = [name for name in dict.fromkeys(given) if name not in rule.names]
            return unknown, sorted(rule.names)
    return [], []


def _route_path(scope: Scope) -> str:
    """The path as sent, still percent-encoded: an incident id's ``%2F`` is not a separator
    there, so one template segment matches it (as the incident routes read it)."""
    raw: bytes | None = scope.get("raw_path")
    path: str = raw.decode("latin-1").split("?", 1)[0] if raw else scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


class StrictQuery:
    """ASGI middleware: refuses a request whose query string names a parameter its operation
    does not take, before any route code runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            path = _route_path(scope)
            if path.startswith(API_PREFIX):
                unknown, known = unknown_parameters(scope["method"], path, scope["query_string"])
                if unknown:
                    await _refuse(scope, receive, send, unknown, known)
                    return
        await self.app(scope, receive, send)


async def _refuse(
    scope: Scope, receive: Receive, send: Send, unknown: list[str], known: list[str]
) -> None:
    takes = ", ".join(known) if known else "no query parameter"
    names = ", ".join(repr(name) for name in unknown)
    response = error_response(
        Request(scope),
        422,
        "invalid_input",
        f"Unknown query parameter {names}: this route takes {takes}.",
        fields=[
            {"field": name, "in": "query", "problem": "unknown query parameter"} for name in unknown
        ],
    )
    await response(scope, receive, send)
