"""The session's proxy as the runner dials it: the URL from the session row, then checked
by the network guard (`chalicelib/netguard/proxies.py`)."""
from __future__ import annotations

from typing import Any, Callable

from chalicelib.netguard.proxies import dial_url
from chalicelib.netguard.resolve import NetPolicy, Refused, Unresolvable
from chalicelib.proxy_config import proxy_url
from runner_container.machine import ProxyPlan


class ProxyDialer:
    def __init__(self, secret_box: Callable[[], Any], policy: Callable[[], NetPolicy]):
        self.secret_box = secret_box  # both read when first needed: a runner without proxies needs neither
        self.policy = policy

    def url_for(self, session_id: str, row: dict[str, Any]) -> str | None:
        """The proxy URL of the session row (None: no proxy), built by the one builder the
        API's probe uses too (`chalicelib.proxy_config`). Raises when the stored password
        cannot be decrypted (the key was rotated?)."""
        return proxy_url({**row, "session_id": session_id}, self.secret_box())

    def plan(self, session_id: str, row: dict[str, Any]) -> ProxyPlan:
        """What a connect dials: the URL and its checked form (its host looked up now,
        every address checked (PROXY_ALLOW_PRIVATE; metadata and the stack's ports always
        refused) and put in place of the name: no second lookup), or why not."""
        try:
            url = self.url_for(session_id, row)
        except Exception as exc:  # noqa: BLE001 - undecryptable password (key rotated?)
            return ProxyPlan(problem=("proxy_invalid", f"the proxy password cannot be decrypted: {exc}", False))
        if url is None:
            return ProxyPlan()
        try:
            return ProxyPlan(url=url, dial=dial_url(url, self.policy()))
        except Unresolvable as exc:  # DNS may come back: retried with backoff
            return ProxyPlan(url=url, problem=("proxy_dns_failed",
                                               f"the session's proxy does not resolve: {exc.message}", True))
        except Refused as exc:  # the guard's rules: never dialled, until the proxy is changed
            return ProxyPlan(url=url, problem=("proxy_refused",
                                               f"the session's proxy is not allowed: {exc.message}", False))
