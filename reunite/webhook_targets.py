"""Where webhooks may be sent: public addresses only, unless an admin allows more.

A webhook URL is chosen by a police system's key, and the server POSTs to it from inside the
deployment. Left open, that is a way to reach what only the server can reach: a cloud's
metadata service (``169.254.169.254``), a database on loopback, the private network. So a
target address must be global (``ipaddress``'s ``is_global``: not loopback, private, link-local,
shared, reserved, unspecified or multicast) or inside a network listed in
``REUNITE_WEBHOOK_ALLOWED_NETWORKS`` (the tutorial allows ``127.0.0.1/32`` for its local
receiver).

Checked twice: when a webhook is registered (the address the URL names, or its name resolves to
then), and at every delivery on the addresses the name resolves to at that moment; the delivery
then connects to the checked address itself, so a name that changes its answer in between (DNS
rebinding) cannot redirect it. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from urllib.parse import urlsplit

from reunite.errors import WebhookTargetRefused

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOW_SETTING = "REUNITE_WEBHOOK_ALLOWED_NETWORKS"


def allowed_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list (``"127.0.0.1/32, 10.1.0.0/16"``). Raises
    ``ValueError`` naming the entry that is not a network."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"{entry!r} is not a network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def address_refusal(address: Address, allowed: Sequence[Network]) -> str | None:
    """Why ``address`` may not be a webhook target, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed):
        return None
    if address.is_global and not address.is_multicast:
        return None
    kind = next(
        (
            name
            for name, flag in (
                ("a loopback address", address.is_loopback),
                ("a link-local or cloud-metadata address", address.is_link_local),
                ("a private address", address.is_private),
                ("a multicast address", address.is_multicast),
            )
            if flag
        ),
        "not a public address",
    )
    return (
        f"The webhook target {address} is {kind}; events go to public addresses only, unless "
        f"an admin allows its network in {ALLOW_SETTING}."
    )


def resolved_addresses(host: str, port: int) -> list[Address]:
    """Every address ``host`` names now (an address literal in any form the system accepts,
    ``0x7f000001`` included, or a name looked up in DNS). Raises ``OSError`` when it names
    none. Cost: one lookup (milliseconds; up to the resolver's timeout)."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(answer[4][0]).split("%")[0]) for answer in answers]


def checked_address(host: str, port: int, allowed: Sequence[Network]) -> Address:
    """The address to connect to for ``host``: the first it resolves to, when every address
    it resolves to may be a target. Raises ``WebhookTargetRefused``, or ``OSError`` when the
    name does not resolve."""
    addresses = resolved_addresses(host, port)
    for address in addresses:
        refusal = address_refusal(address, allowed)
        if refusal:
            raise WebhookTargetRefused(refusal, errors=[{"field": "url", "message": refusal}])
    return addresses[0]


def check_registered_url(url: str, allowed: Sequence[Network]) -> None:
    """Refuse a new webhook's URL whose host is, or resolves to, a refused address. A name that
    does not resolve yet is accepted: every delivery checks it again."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    try:
        checked_address(host, port, allowed)
    except OSError:
        return
