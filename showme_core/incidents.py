"""Incidents: what ShowMe knows of one CAD incident, gathered by its ``incident_id``.

An incident is not a row of its own: it is every invite of an organisation that carries the
CAD's id, with those invites' pictures, live sessions and events. Newest first throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from showme_core import invites, media
from showme_core.clock import as_utc
from showme_core.errors import NotFound
from showme_core.events import Event, last_event_id
from showme_core.organisations import Organisation, get_organisation
from showme_core.store.schema import events

MAX_INVITES = 200
MAX_MEDIA = 500
MAX_EVENTS = 1000
# The rungs of the ladder, best first: an invite's stream outcome is the best it reached.
OUTCOMES = ("video", "stills", "failed", "refused", "unavailable", "none")


@dataclass(frozen=True)
class Incident:
    """One CAD incident of one organisation, as ShowMe saw it."""

    incident_id: str
    organisation: Organisation
    invites: list[invites.Invite]
    sms: dict[str, dict[str, Any]]
    media: list[media.Media]
    events: list[Event]
    last_event_id: int

    def streams(self) -> list[dict[str, Any]]:
        """Per invite, newest first: the best rung its live session reached and its last state."""
        found: dict[str, dict[str, Any]] = {}
        for event in reversed(self.events):  # oldest first: the last state wins
            if not event.type.startswith("stream.") or event.invite_id is None:
                continue
            stream = event.data["stream"]
            entry = found.setdefault(
                event.invite_id,
                {"invite_id": event.invite_id, "outcome": "none", "started_at": None},
            )
            if event.type == "stream.requested" and entry["started_at"] is None:
                entry["started_at"] = event.to_json()["created_at"]
            entry["state"] = stream["state"]
            entry["updated_at"] = event.to_json()["created_at"]
            outcome = _outcome(event.type, stream)
            if OUTCOMES.index(outcome) < OUTCOMES.index(entry["outcome"]):
                entry["outcome"] = outcome
        order = [invite.id for invite in self.invites]
        return sorted(found.values(), key=lambda entry: order.index(entry["invite_id"]))

    def to_json(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "invites": [invite.to_json(self.sms.get(invite.id)) for invite in self.invites],
            "media": [item.to_json() for item in self.media],
            "streams": self.streams(),
            "events": [event.to_json() for event in self.events],
            "last_event_id": self.last_event_id,
        }


def _outcome(type_: str, stream: dict[str, Any]) -> str:
    if type_ == "stream.connected":
        return "video"
    if type_ == "stream.stills":
        return "stills"
    if type_ == "stream.failed":
        reason = stream.get("reason")
        return reason if reason in ("refused", "unavailable") else "failed"
    return "none"


async def get_incident(conn: AsyncConnection, organisation_id: str, incident_id: str) -> Incident:
    """The incident, only within ``organisation_id``; unknown (or another's) answers 404."""
    # The feed position first: a feed resumed from it replays anything that comes after.
    last_id = await last_event_id(conn, organisation_id)
    found = await invites.list_invites(
        conn, organisation_id, limit=MAX_INVITES, incident_id=incident_id
    )
    if not found:
        raise NotFound("No invite carries this incident id.", code="incident_not_found")
    ids = [invite.id for invite in found]
    pictures = await media.list_media(
        conn, organisation_id, incident_id=incident_id, limit=MAX_MEDIA
    )
    rows = await conn.execute(
        select(events)
        .where(events.c.organisation_id == organisation_id, events.c.invite_id.in_(ids))
        .order_by(events.c.seq.desc())
        .limit(MAX_EVENTS)
    )
    session = [
        Event(r.organisation_id, int(r.seq), r.type, r.invite_id, r.data, as_utc(r.created_at))
        for r in rows
    ]
    return Incident(
        incident_id=incident_id,
        organisation=await get_organisation(conn, organisation_id),
        invites=found,
        sms=await invites.latest_sms(conn, ids),
        media=pictures,
        events=session,
        last_event_id=last_id,
    )
