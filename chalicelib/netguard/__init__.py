"""Network guards for every outbound connection made on a caller's behalf.

- `addresses`: the IP rules (metadata always refused; private, loopback and other
  non-global addresses unless allowed; IPv6 forms that carry an IPv4 address judged as
  that address; the stack's own ports on local addresses always refused).
- `resolve`: `NetPolicy`: one lookup, every answer checked, the checked addresses dialled.
- `http`: `OutboundHttp`, the one HTTP client (webhooks, media downloads);
  `deadline`: its total deadline per request (a watchdog that shuts sockets down).
- `proxies`: the check of a session proxy before the probe or the runner dials it.
- `validation`: the configuration-time checks (422 naming the field).
- `offline`: resolvers for tests and benchmarks (no name lookup leaves the machine), injected
  by whoever builds a policy; nothing turns them on from a setting.

Imports stay lazy here: the API imports this package without pulling `requests` in.
"""
from chalicelib.netguard.offline import install_offline_resolver

__all__ = ["install_offline_resolver"]
