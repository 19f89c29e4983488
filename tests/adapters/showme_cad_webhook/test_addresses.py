"""Which addresses may receive webhooks, read from the address alone (no store, no network)."""

from __future__ import annotations

import ipaddress

import pytest

from showme_cad_webhook.addresses import AddressRefused, checked_address, parse_url, refusal

PUBLIC = ["8.8.8.8", "93.184.215.14", "2001:4860:4860::8888", "::ffff:8.8.8.8", "64:ff9b::808:808"]
INTERNAL = {
    "10.0.0.1": "private",
    "172.31.255.255": "private",
    "192.168.0.1": "private",
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "fd12:3456::1": "private",
    "0.0.0.0": "unspecified",  # noqa: S104 - an address refused, not bound
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "ff05::2": "multicast",
    "100.64.0.1": "non-public",
    "198.18.0.1": "private",
    "192.0.2.1": "private",
    "2001:db8::1": "private",
    "240.0.0.1": "reserved",
    "255.255.255.255": "reserved",
    "::ffff:192.168.1.1": "private",
    "::ffff:127.0.0.1": "loopback",
    "64:ff9b::7f00:1": "loopback",
    "2002:c0a8:101::1": "private",  # 6to4 of 192.168.1.1
}


@pytest.mark.parametrize("text", PUBLIC)
def test_public_unicast_addresses_are_allowed(text: str) -> None:
    assert refusal(ipaddress.ip_address(text), allow_loopback=False) is None


def test_internal_addresses_are_refused_with_their_reason() -> None:
    for text, reason in INTERNAL.items():
        assert refusal(ipaddress.ip_address(text), allow_loopback=False) == reason, text


def test_the_test_setting_opens_loopback_only() -> None:
    for text in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        assert refusal(ipaddress.ip_address(text), allow_loopback=True) is None, text
    for text in ("10.0.0.1", "169.254.169.254", "0.0.0.0"):  # noqa: S104
        assert refusal(ipaddress.ip_address(text), allow_loopback=True) is not None, text


def test_url_shapes() -> None:
    target = parse_url("https://CAD.Example.org.:8443/hook?x=1", allow_insecure=False)
    assert (target.host, target.port, target.literal) == ("cad.example.org", 8443, None)
    assert parse_url("https://[2001:db8::1]/h", allow_insecure=False).literal is not None
    idn = parse_url("https://bücher.example/h", allow_insecure=False)
    assert idn.host == "xn--bcher-kva.example"
    for url in ("http://cad.example/h", "https:///h", "https://u@cad.example/", "x" * 3000):
        with pytest.raises(AddressRefused):
            parse_url(url, allow_insecure=False)
    assert parse_url("http://127.0.0.1:9/h", allow_insecure=True).port == 9


async def test_every_address_of_a_name_is_checked() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        return {"ok.example": ["8.8.8.8", "8.8.4.4"], "bad.example": ["8.8.8.8", "10.0.0.1"]}[host]

    ok = parse_url("https://ok.example/h", allow_insecure=False)
    assert await checked_address(ok, resolve, allow_loopback=False) == "8.8.8.8"
    bad = parse_url("https://bad.example/h", allow_insecure=False)
    with pytest.raises(AddressRefused, match=r"bad\.example resolves to 10\.0\.0\.1"):
        await checked_address(bad, resolve, allow_loopback=False)
