"""Configuration-time checks (422 naming the field) for webhook URLs, media URLs and proxies.

At configuration a host that does not resolve *yet* is accepted: the connection-time
check (the HTTP client, the probe, the runner's dial) refuses it if it ever resolves to
a forbidden address. Everything else the guard refuses is refused here already, so the
caller hears it at once instead of reading a failed delivery or a session error later.
"""
from __future__ import annotations

from typing import Callable

from chalicelib.errors import ValidationFailed
from chalicelib.netguard.proxies import check_proxy_host
from chalicelib.netguard.resolve import NetPolicy, Refused


def webhook_url_checker(policy: Callable[[], NetPolicy]) -> Callable[[str], None]:
    """For `SessionService(check_webhook_url=...)`."""
    def check(url: str) -> None:
        try:
            policy().check_url(url, what="webhook URL", unresolvable_ok=True)
        except Refused as exc:
            raise ValidationFailed(f"webhook URL refused: {exc.message}", code="webhook_url_refused",
                                   details=[{"field": "webhook.url", "message": exc.message,
                                             "type": "ssrf"}]) from None
    return check


def proxy_host_checker(policy: Callable[[], NetPolicy], field: str = "host") -> Callable[[str, int], None]:
    """For `SessionService(check_proxy=...)`: a proxy the runner would refuse to dial."""
    def check(host: str, port: int) -> None:
        try:
            check_proxy_host(host, port, policy(), unresolvable_ok=True)
        except Refused as exc:
            message = f"proxy refused: {exc.message}"
            raise ValidationFailed(message, code="proxy_address_not_allowed",
                                   details=[{"field": field, "message": exc.message,
                                             "type": "proxy_address_not_allowed"}]) from None
    return check
