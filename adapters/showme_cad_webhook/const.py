"""Names the adapter keeps stable: its settings block, consumer cursor, records and URLs."""

from __future__ import annotations

# The settings block (``[plugin_settings.cad_webhook]``), the entry point and the adapter's name,
# which also names its event cursors in the store: renaming it would start every cursor afresh.
DOMAIN = "cad_webhook"
NAME = DOMAIN

# Where the adapter's HTTP routes live, beside the core's ``/api/v1``.
PREFIX = "/api/v1/cad-webhook"

# The records it keeps through ``showme.plugin_state(DOMAIN)``. Kinds ending in ``:`` are per
# endpoint (the endpoint id follows), so that one endpoint's queue and history list on their own.
ENDPOINT = "endpoint"
DELIVERY = "delivery:"
PENDING = "pending:"
LEASE = "lease:"
INCIDENT_OF = "incident_of"

# A signing secret is sealed for its own endpoint only (a sealed value copied onto another
# endpoint's record does not open).
SEAL_PURPOSE = "cad_webhook.signing_secret."

# The pseudo-type of a delivery that carries an incident's EIDO rather than one event.
EIDO_TYPE = "incident.eido"

USER_AGENT = "ShowMe-Webhooks/1"
