"""What may cross a signaling socket: the shapes relayed between caller and console, and how a
socket is refused (``docs/live.md``, "Messages" and "Refusals")."""

from __future__ import annotations

from typing import Any

MAX_SDP = 60_000
MAX_CANDIDATE = 2_000
CALLER_RELAYS = {"offer", "candidate", "status"}
CONSOLE_RELAYS = {"answer", "candidate", "control", "decoded"}
CONTROL_ACTIONS = {"switch-camera", "torch-on", "torch-off", "snapshot", "restart"}
RUNGS = {"waiting", "connecting", "video", "stills", "stopped"}
CAMERA_STATES = {"off", "granted", "refused", "unavailable"}


class Refusal(Exception):
    """A socket is refused: it gets ``{"type": "refused", code, message}`` and this close code."""

    def __init__(self, close_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.close_code = close_code
        self.code = code
        self.message = message


def bad_message(message: str) -> Refusal:
    return Refusal(4400, "bad_message", message)


def link_replaced() -> Refusal:
    return Refusal(
        4401, "link_replaced", "A new link was sent for this session: open the newest message."
    )


def validate_relayed(role: str, message: dict[str, Any]) -> None:
    """Only well-formed WebRTC signaling passes; anything else refuses the sender."""
    kind = message["type"]
    fields = set(message) - {"type"}
    if kind in ("offer", "answer"):
        if (
            fields != {"sdp"}
            or not isinstance(message["sdp"], str)
            or len(message["sdp"]) > MAX_SDP
        ):
            raise bad_message(f"{kind} needs an sdp text of at most {MAX_SDP} characters")
    elif kind == "candidate":
        candidate = message.get("candidate")
        if fields != {"candidate"}:
            raise bad_message("candidate needs a candidate field (an object or null)")
        if candidate is not None and not _is_candidate(candidate):
            raise bad_message("candidate must be an RTCIceCandidateInit")
    elif kind == "control":
        if fields != {"action"} or message["action"] not in CONTROL_ACTIONS:
            raise bad_message(f"control action must be one of {sorted(CONTROL_ACTIONS)}")
    elif kind == "status":
        if (
            fields - {"rung", "camera", "facing", "torch"}
            or message.get("rung", "waiting") not in RUNGS
            or message.get("camera", "off") not in CAMERA_STATES
            or message.get("facing", "environment") not in ("environment", "user")
            or not isinstance(message.get("torch", False), bool)
        ):
            raise bad_message("status has rung, camera, facing and torch, with known values")
    elif kind == "decoded" and fields:
        raise bad_message("decoded has no fields")


def _is_candidate(candidate: Any) -> bool:
    """An ``RTCIceCandidateInit`` of flat fields: nothing nested is relayed to the other side."""
    if not isinstance(candidate, dict) or set(candidate) - {
        "candidate",
        "sdpMid",
        "sdpMLineIndex",
        "usernameFragment",
    }:
        return False
    text, mid, index, ufrag = (
        candidate.get(k) for k in ("candidate", "sdpMid", "sdpMLineIndex", "usernameFragment")
    )
    return (
        isinstance(text, str)
        and len(text) <= MAX_CANDIDATE
        and (mid is None or (isinstance(mid, str) and len(mid) <= 64))
        and (index is None or (isinstance(index, int) and not isinstance(index, bool)))
        and (ufrag is None or (isinstance(ufrag, str) and len(ufrag) <= 256))
    )
