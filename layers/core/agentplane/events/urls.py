"""Which webhook URLs agentplane will POST to.

Only http(s). Outside local mode only https, and never to a loopback, private,
link-local or otherwise non-public address: a webhook must not become a way to reach
the network agentplane runs in. The rule is checked twice: on creation (the host as
written: an address literal, `localhost`) and before each delivery (every address the
host resolves to at that moment), since a name may point elsewhere later.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from agentplane.settings import Settings

LOCAL_NAMES = ("localhost", "localhost.localdomain")


class WebhookUrlError(ValueError):
    """A URL agentplane refuses to deliver to; `rule` names why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def allows_private(settings: Settings) -> bool:
    """Whether private and loopback addresses are allowed (locally, unless configured)."""
    allowed = settings.webhook_allow_private_networks
    return settings.is_local if allowed is None else allowed


def public_address(address: str) -> bool:
    """True for an address on the public internet."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, settings: Settings) -> str:
    """The URL's host, or WebhookUrlError saying which rule it breaks."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookUrlError("scheme", "must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise WebhookUrlError("credentials", "must not carry a user name or password")
    try:
        parts.port  # noqa: B018 (parsing it is the check)
    except ValueError as exc:
        raise WebhookUrlError("port", "has an invalid port") from exc
    if not settings.is_local and parts.scheme != "https":
        raise WebhookUrlError("https", "must be an https:// URL")
    host = parts.hostname.rstrip(".").lower()
    if allows_private(settings):
        return host
    if host in LOCAL_NAMES or host.endswith(".localhost"):
        raise WebhookUrlError("public_address", "must not name this machine")
    try:
        literal = public_address(host)
    except ValueError:
        return host  # a name: its addresses are checked before each delivery
    if not literal:
        raise WebhookUrlError(
            "public_address", "must not be a loopback, private or link-local address"
        )
    return host
