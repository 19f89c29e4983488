"""Checks that a real answer is one the OpenAPI document describes: its status is listed for the
operation, a JSON body validates against the documented schema, and an error's code is among
those the response names."""

from __future__ import annotations

import json
from typing import Any

from openapi_schema_validator import OAS31Validator


def operation(document: dict[str, Any], method: str, template: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][template][method.lower()]
    return found


def validate(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Validate ``instance`` against ``schema``, whose ``$ref``s point into ``document``."""
    rooted = {**schema, "components": document["components"]}
    OAS31Validator(rooted).validate(instance)


def check_answer(
    document: dict[str, Any],
    method: str,
    template: str,
    status: int,
    content_type: str,
    body: bytes,
) -> None:
    """Fail unless the document describes this answer of ``method template``."""
    responses = operation(document, method, template)["responses"]
    assert str(status) in responses, f"{method} {template} answered {status}: not documented"
    response = responses[str(status)]
    media_type = content_type.split(";", 1)[0].strip()
    if not response.get("content"):
        assert not body, f"{method} {template} {status} has a body the document does not describe"
        return
    assert media_type in response["content"], (method, template, status, media_type)
    if media_type != "application/json":
        return
    value = json.loads(body)
    validate(document, response["content"][media_type]["schema"], value)
    if status >= 400:
        code = value["error"]["code"]
        assert f"`{code}`" in response["description"], (
            f"{method} {template} answered {status} {code}, which its response does not name"
        )
