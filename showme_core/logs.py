"""Structured JSON logs (structlog), with secrets redacted before anything is written."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from showme_core.config import Settings

SECRET_KEYS = {"password", "token", "authorization", "cookie", "link", "body", "secret", "api_key"}
# A caller link carries its token after "/c/#"; an API key starts with "smk_".
_SECRET_PATTERNS = [
    (re.compile(r"(/c/#)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
    (re.compile(r"smk_[A-Za-z0-9_\-]+"), "smk_[redacted]"),
    # A delivery-report URL ends with its message's secret.
    (re.compile(r"(/sms/callbacks/[^/\s]+/[^/\s]+/)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
]


_HANDLER_NAME = "showme"


def redact_text(text: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif isinstance(value, str):
            event_dict[key] = redact_text(value)
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library (uvicorn, alembic) to one JSON stream."""
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler: logging.Handler
    if settings.log_file is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(settings.log_file)
    else:
        handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
            old.close()
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log (with the request id); uvicorn's would duplicate it.
    logging.getLogger("uvicorn.access").disabled = True
