"""Which webhook URLs are refused, by rule: only http(s); outside local mode only https
and never a loopback, private or link-local address (no sockets: literals and names
only; a name's addresses are checked before each delivery)."""

from __future__ import annotations

import pytest

from agentplane.events.urls import WebhookUrlError, check_url
from agentplane.settings import Settings

LOCAL = Settings(stage="test")
DEV = Settings(stage="dev")


@pytest.mark.parametrize(
    ("url", "settings", "rule"),
    [
        ("ftp://example.com/hook", LOCAL, "scheme"),
        ("file:///etc/passwd", LOCAL, "scheme"),
        ("https://u:p@example.com/hook", LOCAL, "credentials"),
        ("http://example.com/hook", DEV, "https"),
        ("https://127.0.0.1/hook", DEV, "public_address"),
        ("https://10.1.2.3/hook", DEV, "public_address"),
        ("https://192.168.0.10:8443/hook", DEV, "public_address"),
        ("https://169.254.169.254/latest/meta-data", DEV, "public_address"),
        ("https://[::1]/hook", DEV, "public_address"),
        ("https://[::ffff:10.0.0.1]/hook", DEV, "public_address"),
        ("https://[fe80::1]/hook", DEV, "public_address"),
        ("https://localhost/hook", DEV, "public_address"),
        ("https://api.localhost/hook", DEV, "public_address"),
        (
            "https://127.0.0.1/hook",
            Settings(stage="test", webhook_allow_private_networks=False),
            "public_address",
        ),
    ],
)
def test_refused_urls_name_their_rule(url: str, settings: Settings, rule: str) -> None:
    with pytest.raises(WebhookUrlError) as refused:
        check_url(url, settings)
    assert refused.value.rule == rule


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        ("http://127.0.0.1:8080/hook", LOCAL),
        ("https://hooks.example.com/agentplane", DEV),
        ("https://8.8.8.8/hook", DEV),
        ("https://10.0.0.5/hook", Settings(stage="dev", webhook_allow_private_networks=True)),
    ],
)
def test_allowed_urls(url: str, settings: Settings) -> None:
    assert check_url(url, settings)
