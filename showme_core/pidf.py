"""PIDF-LO (RFC 4119, shapes per RFC 5491): where a caller's phone was, as a CAD reads locations.

One document per position: a ``presence`` whose ``dm:device`` is the phone that held an invite's
link, named by a pseudonym (never its number), with a circle (the position and its accuracy) or a
point (no accuracy known), usage rules that forbid passing it on and say when to delete it, how
the position was found and when.

The document is built as an element tree and serialised by ElementTree, which escapes every value;
nothing is pasted into XML text by hand.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from showme_core.clock import iso

PIDF = "urn:ietf:params:xml:ns:pidf"
DATA_MODEL = "urn:ietf:params:xml:ns:pidf:data-model"
GEOPRIV = "urn:ietf:params:xml:ns:pidf:geopriv10"
BASIC_POLICY = "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
GEO_SHAPE = "urn:ietf:params:xml:ns:pidf:geopriv10:geoShape"
GML = "http://www.opengis.net/gml"

# WGS 84 latitude then longitude, and metres (RFC 5491, section 5.2).
WGS84_2D = "urn:ogc:def:crs:EPSG::4326"
METRE = "urn:ogc:def:uom:EPSG::9001"

# The prefixes every PIDF-LO example uses, PIDF's own as the default namespace: receivers that
# look for "<presence" or "gml:pos" rather than for namespaces still read ours. ElementTree's
# registry is process-wide, but it only chooses how these namespaces are written.
PREFIXES = {
    "": PIDF,
    "dm": DATA_MODEL,
    "gp": GEOPRIV,
    "gbp": BASIC_POLICY,
    "gs": GEO_SHAPE,
    "gml": GML,
}
for _prefix, _uri in PREFIXES.items():
    ET.register_namespace(_prefix, _uri)


@dataclass(frozen=True)
class DeviceLocation:
    """A phone's position at one moment, and the rules a receiver must follow with it."""

    entity: str  # the presentity: a pseudonymous ``pres:`` URI of the invite
    device_id: str  # a URN for the phone, pseudonymous as well
    lat: float
    lon: float
    radius_m: float | None  # None when the phone said nothing of its accuracy
    method: str | None  # a token of the IANA method registry (RFC 4119), or None when unknown
    timestamp: datetime  # when the position was taken
    retention_expiry: datetime  # when a receiver must have deleted it


def _number(value: float) -> str:
    # The shortest text that reads back as the same float: no digits lost, none invented.
    return repr(float(value))


def _sub(parent: ET.Element, namespace: str, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{namespace}}}{name}")
    if text is not None:
        element.text = text
    return element


def _shape(location_info: ET.Element, place: DeviceLocation) -> None:
    position = f"{_number(place.lat)} {_number(place.lon)}"
    if place.radius_m is None or place.radius_m <= 0:
        # A point claims no accuracy, which is the truth when the phone reported none (a zero
        # radius would claim a perfect fix).
        point = _sub(location_info, GML, "Point")
        point.set("srsName", WGS84_2D)
        _sub(point, GML, "pos", position)
        return
    circle = _sub(location_info, GEO_SHAPE, "Circle")
    circle.set("srsName", WGS84_2D)
    _sub(circle, GML, "pos", position)
    _sub(circle, GEO_SHAPE, "radius", _number(place.radius_m)).set("uom", METRE)


def pidf_lo(place: DeviceLocation) -> str:
    """The PIDF-LO document of ``place``, as text with its XML declaration."""
    presence = ET.Element(f"{{{PIDF}}}presence", {"entity": place.entity})
    device = _sub(presence, DATA_MODEL, "device")
    device.set("id", "phone")
    # The order is the schemas': geopriv (location, rules, method), then the device's id and time.
    geopriv = _sub(device, GEOPRIV, "geopriv")
    _shape(_sub(geopriv, GEOPRIV, "location-info"), place)
    rules = _sub(geopriv, GEOPRIV, "usage-rules")
    _sub(rules, BASIC_POLICY, "retransmission-allowed", "false")
    _sub(rules, BASIC_POLICY, "retention-expiry", iso(place.retention_expiry))
    if place.method is not None:
        _sub(geopriv, GEOPRIV, "method", place.method)
    _sub(device, DATA_MODEL, "deviceID", place.device_id)
    _sub(device, DATA_MODEL, "timestamp", _rfc3339(place.timestamp))
    return ET.tostring(presence, encoding="unicode", xml_declaration=True)


def _rfc3339(moment: datetime) -> str:
    """A time as RFC 3339 text. One recorded with a local offset keeps it: the local time at the
    scene is evidence too. A time without any offset is taken as UTC, as the store keeps it."""
    offset = moment.utcoffset()
    if offset is None or not offset:
        return iso(moment) or ""
    return moment.isoformat()
