"""NENA EIDO (NENA-STA-021, version 1.0) of an incident: what ShowMe knows of it, for a CAD.

The document is what a CAD stores and forwards, so what leaves ShowMe in it is chosen with care
(``docs/eido.md``):

- pictures are the authenticated ``/api/v1/media/{id}`` URLs and their SHA-256, never a token or a
  pre-signed link: every view stays authorised and audited;
- callers are named by a pseudonym of their invite: no invite id, and the phone number only in a
  callback component when the receiver is to have it (``include_phone``);
- locations are PIDF-LO documents that forbid retransmission and expire with the organisation's
  retention, and only when the receiver is to have them (``include_locations``);
- session notes are written from the events' facts, never copied from their payloads (which hold
  the phone number and the positions).

Every ``$id`` is derived from what it identifies, so the same incident gives the same document.
"""

from __future__ import annotations

import hashlib
import html
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from showme_core.clock import iso
from showme_core.events import Event
from showme_core.incidents import Incident
from showme_core.invites import Invite, InviteStatus
from showme_core.media import Media
from showme_core.pidf import DeviceLocation, pidf_lo

EIDO_VERSION = "1.0"
# Registry values (NENA registries). ShowMe's organisation is the PSAP that took the call; ShowMe
# does not know the incident's type (the CAD does), and a picture's position is where the
# caller's phone was.
AGENCY_ROLE = "CallReceiving"
AGENCY_TYPE = "psap"
INCIDENT_TYPE = "Unknown"
CALL_TYPE = "emergency"
LOCATION_TYPE = "Caller"
# An invite is a call the PSAP placed: the link rings until the caller opens it, and ends when a
# dispatcher ends it or it expires.
CALL_STATES = {
    InviteStatus.PENDING: "callBegin",
    InviteStatus.OPENED: "callAnswered",
    InviteStatus.ENDED: "callEnd",
    InviteStatus.EXPIRED: "callEnd",
}
# How a picture's position was found, by its source (``media.location_for``): both are the GPS
# block of the picture's EXIF, which the phone's camera wrote from its location fix.
METHODS = {"exif": "GPS", "caller_exif": "GPS"}
FOUND_BY = {
    "exif": "read by ShowMe from the picture",
    "caller_exif": "read by the caller's page from the original picture",
}

# The namespace of ShowMe's derived component ids (RFC 4122 name-based, SHA-1).
_IDS = uuid.UUID("5d1e7c7a-9b0f-5f4e-8a53-2f0c4b6e9d21")


def caller_pseudonym(invite_id: str) -> str:
    """A stable name for an invite's caller that does not reveal the invite id: invite ids are
    random, so a plain hash cannot be walked back."""
    return hashlib.sha256(f"showme-caller\x00{invite_id}".encode()).hexdigest()[:32]


def _derived(*parts: str) -> str:
    return f"urn:uuid:{uuid.uuid5(_IDS, chr(31).join(parts))}"


def _ref(target: str) -> dict[str, str]:
    return {"$ref": target}


def _time(moment: datetime) -> str:
    return iso(moment) or ""


class _Ids:
    """Every component's ``$id``, derived from the organisation and what the component is (each
    worked out once per document: references repeat them many times)."""

    def __init__(self, organisation_id: str, incident_id: str, host: str) -> None:
        self.organisation_id = organisation_id
        self.host = host
        # NENA's incident identifier: urn:emergency:uid:incidentid:<unique>:<element's host>.
        # The CAD's id is free text (spaces, slashes), so its hash stands in for it.
        unique = hashlib.sha256(f"{organisation_id}\x00{incident_id}".encode()).hexdigest()[:32]
        self.document = f"urn:emergency:uid:incidentid:{unique}:{host}"
        self.agency = _derived("agency", organisation_id)
        self.incident = _derived("incident", organisation_id, incident_id)
        self._known: dict[tuple[str, str], str] = {}

    def _of(self, kind: str, key: str) -> str:
        found = self._known.get((kind, key))
        if found is None:
            found = self._known[kind, key] = _derived(kind, self.organisation_id, key)
        return found

    def call(self, invite_id: str) -> str:
        return f"urn:emergency:uid:callid:{caller_pseudonym(invite_id)}:{self.host}"

    def callback(self, invite_id: str) -> str:
        return self._of("callback", invite_id)

    def media(self, media_id: str) -> str:
        return self._of("media", media_id)

    def location(self, media_id: str) -> str:
        return self._of("location", media_id)

    def note(self, event_id: int) -> str:
        return self._of("note", str(event_id))


def eido_for(
    incident: Incident,
    base_url: str,
    *,
    include_phone: bool = True,
    include_locations: bool = True,
) -> dict[str, Any]:
    """The incident as an EIDO document (JSON-ready). ``base_url`` is ShowMe's public URL; the
    caller's phone number is left out unless ``include_phone``, positions unless
    ``include_locations``."""
    return _Document(incident, base_url.rstrip("/"), include_phone, include_locations).build()


@dataclass
class _OfCall:
    """One invite's pictures, events and positions."""

    pictures: list[Media] = field(default_factory=list)
    notes: list[Event] = field(default_factory=list)
    located: list[Media] = field(default_factory=list)


class _Document:
    def __init__(
        self, incident: Incident, base_url: str, include_phone: bool, include_locations: bool
    ) -> None:
        self.incident = incident
        self.base_url = base_url
        self.host = urlsplit(base_url).hostname or "localhost"
        self.include_phone = include_phone
        self.include_locations = include_locations
        self.ids = _Ids(incident.organisation.id, incident.incident_id, self.host)
        # Oldest first: a CAD reads the calls, pictures and notes in the order they happened.
        self.invites = sorted(incident.invites, key=lambda i: (i.created_at, i.id))
        self.media = sorted(incident.media, key=lambda m: (m.created_at, m.id))
        self.events = sorted(incident.events, key=lambda e: e.id)
        self.media_ids = {item.id for item in self.media}
        self.located = (
            [item for item in self.media if item.location is not None] if include_locations else []
        )
        # What each call lists, gathered in one pass (an incident may hold 500 pictures).
        self.of_call = {invite.id: _OfCall() for invite in self.invites}
        for item in self.media:
            self.of_call.get(item.invite_id, _OfCall()).pictures.append(item)
        for event in self.events:
            self.of_call.get(event.invite_id or "", _OfCall()).notes.append(event)
        for item in self.located:
            self.of_call.get(item.invite_id, _OfCall()).located.append(item)

    def prologue(
        self, component_id: str, updated: datetime, media: Iterable[str] = ()
    ) -> dict[str, Any]:
        prologue: dict[str, Any] = {
            "$id": component_id,
            "lastUpdateTimeStamp": _time(updated),
            "updatedByAgencyReference": _ref(self.ids.agency),
        }
        references = [_ref(self.ids.media(media_id)) for media_id in media]
        if references:
            prologue["mediaReferences"] = references
        return prologue

    def build(self) -> dict[str, Any]:
        document = {
            **self.prologue(self.ids.document, self.newest()),
            "eidoVersion": EIDO_VERSION,
            "issuingElementIdentification": self.host,
            "incidentComponent": self.incident_component(),
            "callComponent": [self.call(invite) for invite in self.invites],
        }
        if self.include_phone:
            document["callbackComponent"] = [self.callback(invite) for invite in self.invites]
        if self.media:
            document["mediaComponent"] = [self.picture(item) for item in self.media]
        if self.located:
            document["locationComponent"] = [self.location(item) for item in self.located]
        if self.events:
            document["notesComponent"] = [self.note(event) for event in self.events]
        document["agencyComponent"] = [self.agency()]
        return document

    # ---- what happened when --------------------------------------------------------------------

    def newest(self) -> datetime:
        """The time of the newest thing ShowMe knows of the incident."""
        times = [_invite_updated(invite) for invite in self.invites]
        times += [item.created_at for item in self.media]
        times += [event.created_at for event in self.events]
        return max(times)

    # ---- components ----------------------------------------------------------------------------

    def agency(self) -> dict[str, Any]:
        return {
            **self.prologue(self.ids.agency, self.incident.organisation.created_at),
            "agencyRoleDescriptionRegistryText": [AGENCY_ROLE],
            "agencyType": [AGENCY_TYPE],
        }

    def incident_component(self) -> dict[str, Any]:
        component = {
            **self.prologue(self.ids.incident, self.newest()),
            "incidentTypeCommonRegistryText": INCIDENT_TYPE,
            "internalIncidentId": self.incident.incident_id,
        }
        if self.located:
            component["locationReference"] = [
                _ref(self.ids.location(item.id)) for item in self.located
            ]
        return component

    def call(self, invite: Invite) -> dict[str, Any]:
        own = self.of_call[invite.id]
        pictures, notes, located = own.pictures, own.notes, own.located
        updated = max(
            [_invite_updated(invite)]
            + [item.created_at for item in pictures]
            + [event.created_at for event in notes]
        )
        call: dict[str, Any] = {
            **self.prologue(self.ids.call(invite.id), updated, (item.id for item in pictures)),
            "callStateRegistryText": CALL_STATES[invite.status()],
            "standardPrimaryCallType": CALL_TYPE,
            "direction": "outgoing",
            "callStartTimestamp": _time(invite.created_at),
            # Whether the link went by SMS or the dispatcher gave it some other way.
            "localCallType": "showme-link-sms"
            if self.incident.sms.get(invite.id)
            else "showme-link",
        }
        if invite.opened_at is not None:
            call["answerDate"] = _time(invite.opened_at)
        if self.include_phone:
            call["callBackReference"] = _ref(self.ids.callback(invite.id))
        if located:
            call["locationReference"] = [_ref(self.ids.location(item.id)) for item in located]
        if notes:
            call["notesReference"] = [_ref(self.ids.note(event.id)) for event in notes]
        return call

    def callback(self, invite: Invite) -> dict[str, Any]:
        return {
            **self.prologue(self.ids.callback(invite.id), invite.created_at),
            "callBackInformationUri": [f"tel:{invite.phone}"],
        }

    def picture(self, item: Media) -> dict[str, Any]:
        taken = _time(item.captured_at) if item.captured_at else "at an unknown time"
        label = (
            f"{item.kind.capitalize()} from the caller, taken {taken}, received "
            f"{_time(item.created_at)}, {item.width}x{item.height}, SHA-256 {item.sha256}"
        )
        return {
            **self.prologue(self.ids.media(item.id), item.created_at),
            # The authenticated API URL: a CAD fetches it with its own key and the view is
            # audited; once ShowMe purges or withholds the picture, a stored EIDO cannot reach it.
            "uri": f"{self.base_url}/api/v1/media/{item.id}",
            "contentType": item.content_type,
            "label": label,
        }

    def location(self, item: Media) -> dict[str, Any]:
        place = item.location or {}
        found = FOUND_BY.get(str(place.get("source")), "from a source ShowMe does not know")
        return {
            **self.prologue(self.ids.location(item.id), item.created_at, [item.id]),
            "locationTypeDescriptionRegistryText": LOCATION_TYPE,
            "locationByValue": pidf_lo(self.device_location(item)),
            "locationDescriptionText": (
                f"Where the caller's phone was when it took the {item.kind} received "
                f"{_time(item.created_at)}: its EXIF GPS position, {found}; the phone wrote it "
                "and ShowMe cannot verify it."
            ),
        }

    def device_location(self, item: Media) -> DeviceLocation:
        place = item.location or {}
        pseudonym = caller_pseudonym(item.invite_id)
        accuracy = place.get("accuracy_m")
        retention = timedelta(seconds=self.incident.organisation.retention_seconds)
        return DeviceLocation(
            entity=f"pres:{pseudonym}@{self.host}",
            device_id=f"urn:uuid:{uuid.uuid5(_IDS, f'device{chr(31)}{pseudonym}')}",
            lat=float(place["lat"]),
            lon=float(place["lon"]),
            radius_m=float(accuracy) if accuracy is not None else None,
            method=METHODS.get(str(place.get("source"))),
            timestamp=_position_time(place.get("captured_at"), item),
            # Retention counts from receipt, as ShowMe's own purge does (docs/architecture.md):
            # a capture time is the phone's word and may be a year old.
            retention_expiry=item.created_at + retention,
        )

    def note(self, event: Event) -> dict[str, Any]:
        shown = []
        if event.type == "media.created":
            media_id = str(event.data.get("media", {}).get("id", ""))
            if media_id in self.media_ids:
                shown.append(media_id)
        return {
            **self.prologue(self.ids.note(event.id), event.created_at, shown),
            "notesActionComments": f"<p>{html.escape(_sentence(event))}</p>",
        }


def _invite_updated(invite: Invite) -> datetime:
    times = [invite.created_at, invite.opened_at, invite.ended_at]
    if invite.ended_at is None and invite.status() is InviteStatus.EXPIRED:
        times.append(invite.expires_at)
    return max(moment for moment in times if moment is not None)


def _position_time(recorded: Any, item: Media) -> datetime:
    """When the position was taken: the time recorded with it (with the phone's offset), else the
    picture's capture time, else its receipt."""
    if isinstance(recorded, str):
        try:
            moment = datetime.fromisoformat(recorded)
        except ValueError:
            moment = None
        if moment is not None and moment.utcoffset() is not None:
            return moment
    return item.captured_at or item.created_at


_STREAM = {
    "requested": "The caller allowed the camera: live video is starting.",
    "stills": "Video does not get through: the caller's phone sends a still every 2 seconds.",
    "ended": "The caller stopped the video.",
}
_INVITE = {
    "invite.opened": "The caller opened the link.",
    "invite.resent": "A new link was sent by SMS; the previous link stopped working.",
    "invite.ended": "The session was ended; the link no longer works.",
    "invite.expired": "The link expired.",
}


def _sentence(event: Event) -> str:
    """A dispatcher's sentence for an event, from its facts only: payloads hold the phone number
    and positions, which must not leak into a note."""
    data = event.data
    if event.type == "invite.created":
        sent = data.get("invite", {}).get("sms") is not None
        if sent:
            return "Video link created and sent by SMS."
        return "Video link created; no SMS sent (the dispatcher gives the link to the caller)."
    if event.type in _INVITE:
        return _INVITE[event.type]
    if event.type == "invite.legal_hold":
        held = bool(data.get("invite", {}).get("legal_hold"))
        return "The pictures were put on legal hold." if held else "The legal hold was lifted."
    if event.type == "sms.status":
        return f"SMS {data.get('sms', {}).get('status', 'status unknown')}."
    if event.type == "sms.attempt":
        provider = data.get("attempt", {}).get("provider", "a provider")
        return f"SMS provider {provider} could not send the SMS."
    if event.type == "media.created":
        item = data.get("media", {})
        return (
            f"{str(item.get('kind', 'picture')).capitalize()} received, "
            f"SHA-256 {item.get('sha256', 'unknown')}."
        )
    if event.type == "media.purged":
        return "A picture was deleted at the end of its retention period; its hash is kept."
    if event.type.startswith("stream."):
        return _stream_sentence(data.get("stream", {}))
    return f"Event {event.type}."


def _stream_sentence(stream: dict[str, Any]) -> str:
    state = stream.get("state")
    if state == "connected":
        route = stream.get("route")
        how = {"direct": " directly", "relay": " through the relay"}.get(str(route), "")
        return f"Live video connected{how}."
    if state == "failed":
        reason = stream.get("reason")
        if reason == "refused":
            return "The caller refused the camera."
        if reason == "unavailable":
            return "The caller's camera is unavailable."
        return f"Live video failed ({reason})." if reason else "Live video failed."
    return _STREAM.get(str(state), f"Live video: {state}.")
