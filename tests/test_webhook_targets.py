"""Webhook targets: public addresses only, unless an admin allows a network; checked on the
address a URL names in any spelling, at registration through the API."""

from __future__ import annotations

import ipaddress

import pytest

from reunite.webhook_targets import address_refusal, allowed_networks, resolved_addresses
from tests.api.test_routes import API, assert_problem
from tests.conftest import key_headers, ready_client, settings_in

INWARD = (
    "169.254.169.254",  # cloud metadata
    "127.0.0.1",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "100.64.0.1",  # carrier-grade NAT
    "fe80::1",
    "fd00:ec2::254",  # AWS metadata over IPv6
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "0.0.0.0",
    "224.0.0.1",
)
PUBLIC = ("8.8.8.8", "1.1.1.1", "2001:4860:4860::8888")


@pytest.mark.parametrize("text", INWARD)
def test_inward_addresses_are_refused_with_the_setting_named(text):
    refusal = address_refusal(ipaddress.ip_address(text), ())
    assert refusal is not None and "REUNITE_WEBHOOK_ALLOWED_NETWORKS" in refusal


@pytest.mark.parametrize("text", PUBLIC)
def test_public_addresses_are_targets(text):
    assert address_refusal(ipaddress.ip_address(text), ()) is None


def test_an_allowed_network_admits_its_addresses_only():
    allowed = allowed_networks(" 127.0.0.1/32, 10.2.0.0/16 ")
    assert address_refusal(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert address_refusal(ipaddress.ip_address("10.2.9.9"), allowed) is None
    assert address_refusal(ipaddress.ip_address("10.3.0.1"), allowed) is not None
    assert address_refusal(ipaddress.ip_address("127.0.0.2"), allowed) is not None
    with pytest.raises(ValueError, match=r"'10\.0\.0\.300/8' is not a network"):
        allowed_networks("10.0.0.300/8")


def test_other_spellings_of_loopback_resolve_to_it():
    for spelling in ("0x7f000001", "2130706433", "127.1", "0177.0.0.1"):
        assert resolved_addresses(spelling, 80) == [ipaddress.ip_address("127.0.0.1")]


def test_the_api_refuses_inward_webhooks_unless_allowed(tmp_path, finder):
    from reunite.app import create_app

    for allowed, expected in (("", 422), ("127.0.0.1/32", 201)):
        settings = settings_in(tmp_path / (allowed or "strict"), webhook_allowed_networks=allowed)
        client = ready_client(create_app(settings, finder=finder))
        try:
            police = key_headers(client, "police", "SH-PSB")
            hooks = f"{API}/agencies/SH-PSB/webhooks"
            for url in (
                "http://169.254.169.254/latest/meta-data/",
                "http://[::1]:6379/",
                "http://10.0.0.7/in",
            ):
                assert_problem(
                    client.post(hooks, json={"url": url}, headers=police),
                    422,
                    "webhook_target_refused",
                )
            for url in ("http://0x7f000001/", "http://localhost:9000/in"):
                loopback = client.post(hooks, json={"url": url}, headers=police)
                assert loopback.status_code == expected, (url, loopback.text)
            # A name that does not resolve yet is accepted: each delivery checks it.
            later = client.post(hooks, json={"url": "https://hooks.psb.example/in"}, headers=police)
            assert later.status_code == 201
        finally:
            client.__exit__(None, None, None)
