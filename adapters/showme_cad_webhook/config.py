"""The adapter's settings (``[plugin_settings.cad_webhook]``), checked when the service is built."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class WebhookSettings(BaseModel):
    """Every setting has a production default; the README lists them with their reasons."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Tests only: accept http:// URLs and loopback addresses (127.0.0.0/8, ::1). Private,
    # link-local and other internal ranges stay refused even then.
    allow_insecure_loopback: bool = False
    # One attempt as a whole (resolution, connection, TLS, request and the answer's head).
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Waits between attempts of one delivery: the first, doubled each time up to the last,
    # each drawn at random between half and all of it so that retries do not march in step.
    retry_first_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=900.0, gt=0)
    # A delivery still failing this long after its first attempt is marked failed (replayable).
    give_up_after_seconds: float = Field(default=86400.0, gt=0)
    # A 4xx that retrying cannot fix (not 408, 409, 425 or 429) fails the delivery after this
    # many attempts, so that one refused message does not hold its invite's later ones for a day.
    client_error_attempts: int = Field(default=5, ge=1)
    # Invites whose deliveries may be in flight at once to one endpoint (one each, in order).
    max_parallel: int = Field(default=4, ge=1, le=32)
    # How often each instance looks for deliveries recorded elsewhere (another instance, a
    # replay from the command line) and for endpoints added or changed.
    poll_seconds: float = Field(default=2.0, gt=0)
    # How long an instance's claim to send for an endpoint lasts without renewal; after a crash
    # another instance (or the restarted one) takes over once it lapses.
    lease_seconds: float = Field(default=60.0, gt=0)
    # When a secret is rotated, the old one keeps signing beside the new one this long.
    rotation_overlap_seconds: float = Field(default=86400.0, ge=0)
    # Delivered and failed deliveries are kept this long for admins, then removed.
    keep_deliveries_seconds: float = Field(default=14 * 86400.0, gt=0)
    max_endpoints_per_organisation: int = Field(default=10, ge=1)
    # Extra certificate authorities (PEM) to trust besides the system's, for a CAD behind a
    # private PKI.
    ca_file: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> WebhookSettings:
        if self.retry_max_seconds < self.retry_first_seconds:
            raise ValueError("retry_max_seconds must not be below retry_first_seconds")
        # An attempt must end well within the lease, or another instance could start sending
        # for the endpoint while this one still waits for an answer.
        if self.lease_seconds < 2 * self.request_timeout_seconds + 4:
            raise ValueError(
                "lease_seconds must be at least twice request_timeout_seconds, plus 4 s"
            )
        if self.ca_file is not None and not self.ca_file.is_file():
            raise ValueError(f"ca_file {self.ca_file} is not a readable file")
        return self

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> WebhookSettings:
        """The settings from the block, or a ``ValueError`` that says what to fix."""
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'block'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ValueError(f"cad_webhook settings: {problems}") from None
