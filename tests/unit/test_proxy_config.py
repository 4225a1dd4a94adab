"""The one proxy URL builder of the API's probe and the runner's dialer (issue 12):
the rules that used to differ between the two (a password without a username, IPv6
brackets) are settled here. No database, no queue: runs in milliseconds."""
from __future__ import annotations

from chalicelib.proxy_config import ProxyConfig, proxy_url


class _Box:
    """Stands for SecretBox: the 'ciphertext' is the password, the context is checked."""

    def decrypt(self, blob: bytes, *, context: str) -> str:
        assert context == "proxy:s1"
        return blob.decode()


def _row(**fields):
    row = {"session_id": "s1", "proxy_enabled": True, "proxy_type": "socks5", "proxy_host": "127.0.0.1",
           "proxy_port": 1080, "proxy_username": None, "proxy_password_enc": None}
    row.update(fields)
    return row


def test_no_credentials():
    assert proxy_url(_row(), _Box()) == "socks5://127.0.0.1:1080"


def test_username_and_password_are_quoted():
    url = proxy_url(_row(proxy_type="http", proxy_username="u:x", proxy_password_enc=b"p@ss/w:%"), _Box())
    assert url == "http://u%3Ax:p%40ss%2Fw%3A%25@127.0.0.1:1080"


def test_username_without_password():
    assert proxy_url(_row(proxy_username="user"), _Box()) == "socks5://user@127.0.0.1:1080"


def test_password_without_username_is_kept():
    assert proxy_url(_row(proxy_password_enc=b"secret"), _Box()) == "socks5://:secret@127.0.0.1:1080"


def test_ipv6_literal_is_bracketed_once():
    assert proxy_url(_row(proxy_host="::1"), _Box()) == "socks5://[::1]:1080"
    assert proxy_url(_row(proxy_host="[::1]"), _Box()) == "socks5://[::1]:1080"
    assert ProxyConfig("https", "fe80::1", 443, "u").address() == "https://u@[fe80::1]:443"


def test_disabled_or_incomplete_proxy_has_no_url():
    assert proxy_url(_row(proxy_enabled=False), _Box()) is None
    assert proxy_url(_row(proxy_host=None), _Box()) is None
    assert proxy_url(_row(proxy_port=None), _Box()) is None


def test_probe_and_runner_build_the_same_url():
    row = _row(proxy_type="http", proxy_username="u", proxy_password_enc=b"pw")
    assert ProxyConfig.from_row(row, _Box()).address() == proxy_url(row, _Box())


def test_repr_hides_the_password():
    assert "pw" not in repr(ProxyConfig("http", "h", 1, "u", "pw"))
