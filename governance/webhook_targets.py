"""Where a webhook may send: the server-side request forgery guard.

A webhook makes the server POST to an address an administrator typed, and the response comes
back into the delivery log. Without a guard that is a way to reach what only the server can
reach: the cloud metadata service (169.254.169.254), the database, Redis, an internal admin
page. So a target must be ``http`` or ``https`` and every address its host resolves to must be
globally routable unicast: no loopback, private, shared (100.64/10), link-local, multicast,
reserved, documentation or unspecified address, IPv4 or IPv6, including IPv4 addresses wrapped
in IPv6 (``::ffff:127.0.0.1``, 6to4, Teredo, NAT64). One bad address among several refuses the
host: a resolver may hand out either. A host the resolver cannot answer for is refused too
(the check fails closed).

``WEBHOOK_ALLOWED_HOSTS`` names hosts exempt from the address rule (exact names or IP
literals, compared without case; never prefixes or suffixes), for receivers inside the network
on purpose.

The rule is checked when a webhook is saved and again before each delivery (DNS may have
changed since), and the delivery connects to the very addresses that were checked, so a second
lookup cannot swap in another one between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

SCHEMES = ("http", "https")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The address may not be a webhook target; the message says why."""


class TargetUnresolved(TargetRefused):
    """The host's addresses could not be looked up (perhaps only for now)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]  # what the connection may use, in the resolver's order
    allow_listed: bool


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why `address` may not be a webhook target (a few words), or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = refusal(inner)
            return f"{reason} (IPv4 {inner} inside IPv6)" if reason else None
    for attribute, reason in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(address, attribute):
            return reason
    if not address.is_global:  # 100.64/10 and the like
        return "not globally routable"
    return None


def allow_listed(host: str) -> bool:
    """Is `host` named in WEBHOOK_ALLOWED_HOSTS? Exact names only."""
    wanted = {h.strip().lower().strip("[]") for h in settings.WEBHOOK_ALLOWED_HOSTS}
    return host.lower() in wanted


def _resolve(host: str, port: int) -> tuple[str, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetUnresolved(
            f"The host {host} could not be resolved ({exc}); a target must resolve to be checked."
        ) from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise TargetUnresolved(f"The host {host} resolved to no address.")
    return addresses


def check(url: str, *, resolve_allow_listed: bool = True) -> Target:
    """The target of `url` with the addresses a delivery may connect to; raises TargetRefused
    saying why not (TargetUnresolved when the resolver could not answer). An allow-listed host
    is not checked; it is resolved only if `resolve_allow_listed`."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise TargetRefused("Not a valid address.") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in SCHEMES:
        raise TargetRefused("Only http:// and https:// addresses may be webhook targets.")
    if not host:
        raise TargetRefused("The address has no host.")
    if allow_listed(host):
        addresses = _resolve(host, port) if resolve_allow_listed else ()
        return Target(scheme, host, port, addresses, allow_listed=True)
    addresses = _resolve(host, port)
    for raw in addresses:
        try:
            address = ipaddress.ip_address(raw.split("%", 1)[0])  # drop an IPv6 zone
        except ValueError:
            raise TargetRefused(f"The host {host} resolved to {raw!r}, not an address.") from None
        reason = refusal(address)
        if reason:
            shown = host if host == raw else f"{host} resolves to {raw}, which"
            raise TargetRefused(
                f"{shown} is not a public address ({reason}); webhooks may only reach public "
                f"addresses unless WEBHOOK_ALLOWED_HOSTS names the host."
            )
    return Target(scheme, host, port, addresses, allow_listed=False)
