"""The inbound routes: a CAD that cannot use the REST API creates, ends and resends invites under
the adapter's prefix, with an API key and its scopes, and gets the REST API's answers."""

from __future__ import annotations

from showme_cad_webhook.bodies import InviteCreate as AdapterInviteCreate
from showme_core.web.schemas import InviteCreate as RestInviteCreate
from tests.adapters.showme_cad_webhook.conftest import Psap
from tests.adapters.showme_cad_webhook.helpers import BASE

BODY = {"phone": "+32470123456", "incident_id": "INC-9", "send_sms": False}


def test_the_inbound_body_is_the_rest_body() -> None:
    ours, theirs = AdapterInviteCreate.model_json_schema(), RestInviteCreate.model_json_schema()
    assert set(ours["properties"]) == set(theirs["properties"])
    assert set(ours.get("required", [])) == set(theirs.get("required", []))
    for name, field in theirs["properties"].items():
        for limit in ("maxLength", "type", "default"):
            assert ours["properties"][name].get(limit) == field.get(limit), (name, limit)


async def test_inbound_routes_need_an_api_key_with_invites_write(
    north: Psap, anonymous: object
) -> None:
    created = await north.cad.post(f"{BASE}/invites", json=BODY)
    invite_id = created.json()["id"]
    for method, path in (
        ("POST", f"{BASE}/invites"),
        ("POST", f"{BASE}/invites/{invite_id}/end"),
        ("POST", f"{BASE}/invites/{invite_id}/resend"),
    ):
        refused = await north.reader.request(method, path, json=BODY)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "missing_scope"
        nobody = await anonymous.request(method, path, json=BODY)  # type: ignore[attr-defined]
        assert nobody.status_code == 401


async def test_inbound_answers_as_the_rest_api(north: Psap, south: Psap) -> None:
    rest = await north.cad.post("/api/v1/invites", json=BODY)
    ours = await north.cad.post(f"{BASE}/invites", json=BODY)
    assert (ours.status_code, rest.status_code) == (201, 201)
    assert set(ours.json()) == set(rest.json())
    assert ours.json()["link"].startswith("http://showme.test/c/#")
    assert ours.headers["location"] == f"/api/v1/invites/{ours.json()['id']}"
    assert ours.headers["cache-control"] == "no-store"
    invite_id = ours.json()["id"]

    # The same Idempotency-Key gives the first answer again, and no second invite.
    keyed = {"Idempotency-Key": "cad-retry-0001"}
    first = await north.cad.post(f"{BASE}/invites", json=BODY, headers=keyed)
    again = await north.cad.post(f"{BASE}/invites", json=BODY, headers=keyed)
    assert again.json()["id"] == first.json()["id"]

    bad = await north.cad.post(f"{BASE}/invites", json={**BODY, "phone": "not a number"})
    bad_rest = await north.cad.post("/api/v1/invites", json={**BODY, "phone": "not a number"})
    assert bad.status_code == bad_rest.status_code == 422
    assert bad.json()["error"]["code"] == bad_rest.json()["error"]["code"]

    resent = await north.cad.post(f"{BASE}/invites/{invite_id}/resend")
    assert resent.status_code == 201, resent.text
    assert resent.json()["link"] != ours.json()["link"]

    # Another organisation's key does not even learn that the invite exists.
    foreign = await south.cad.post(f"{BASE}/invites/{invite_id}/end")
    assert foreign.status_code == 404

    ended = await north.cad.post(f"{BASE}/invites/{invite_id}/end")
    assert ended.status_code == 200, ended.text
    assert ended.json()["status"] == "ended"
    shown = await north.cad.get(f"/api/v1/invites/{invite_id}")
    assert shown.json()["status"] == "ended"
