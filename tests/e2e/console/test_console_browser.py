"""Issue 13: the web console, in real Chromium, through the real stack (chalice local, a
runner with the emulator driver, the SQS bridge). One stack and one browser for the module;
each test gets a fresh browser context (an empty sessionStorage)."""
from __future__ import annotations

import contextlib
import json
import re
import uuid
from urllib.parse import urlsplit

import pytest

from devstack.processes import free_port
from tests.conftest import TEST_ADMIN_KEY
from tests.e2e.console.harness import (CHROMIUM_ARGS, StageProxy, api_call, chromium_path, decode_qr, screenshot,
                                   start_api, start_bridge)
from tests.support.runner_harness import module_runner, wait_for
from tests.support.webhook_receiver import Receiver

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def console_stack(stack, tmp_path_factory):
    logs = tmp_path_factory.mktemp("console-logs")
    env = {**stack.env, "LOG_LEVEL": "WARNING"}
    with contextlib.ExitStack() as stop:
        runner = stop.enter_context(module_runner(env, "console-runner", EMULATOR_QR_ROTATE="4s"))
        api, base = start_api(env, logs / "api.log")
        stop.callback(api.stop)
        # a failed delivery stays failed (no retry round), so the test can redeliver it
        bridge = start_bridge({**env, "WEBHOOK_RETRY_COUNT": "0", "WEBHOOK_TIMEOUT": "3s"}, logs / "bridge.log")
        stop.callback(bridge.stop)
        proxy = StageProxy(base)
        stop.callback(proxy.close)
        receiver = Receiver()
        stop.callback(receiver.close)
        yield type("ConsoleStack", (), {"base": base, "runner": runner, "proxy": proxy, "receiver": receiver,
                                        "logs": logs})()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Watched:
    """A page with what it did: console messages, uncaught errors, requests, dialogs."""

    def __init__(self, context, page):
        self.context, self.page = context, page
        self.console: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))


@pytest.fixture
def watched(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(15000)
    watched = Watched(context, page)
    yield watched
    context.close()
    assert watched.errors == [], f"uncaught errors in the page: {watched.errors}"


def _sign_in(page, url, key, session_id=""):
    page.goto(url)
    page.get_by_label("API key").fill(key)
    if session_id:
        page.get_by_label("Session id").fill(session_id)
    page.get_by_role("button", name="Sign in").click()


def _create(base, **body):
    status, created = api_call(base, "POST", "/sessions", TEST_ADMIN_KEY,
                               {"name": "api made", "session_id": f"c-{uuid.uuid4().hex[:10]}", **body})
    assert status == 201, created
    return created


def _pair(console_stack, created, phone):
    sid, key = created["session_id"], created["api_key"]
    assert api_call(console_stack.base, "POST", f"/sessions/{sid}/connect", key)[0] == 202
    wait_for(lambda: console_stack.runner.emulator("POST", f"/emulator/sessions/{sid}/scan", {"phone": phone})[0] == 200,
             message="the emulator waits for a scan")
    wait_for(lambda: api_call(console_stack.base, "GET", f"/sessions/{sid}/status", key)[1]["status"] == "authenticated",
             message="authenticated")


def _emulator_code(console_stack, sid):
    return console_stack.runner.emulator("GET", f"/emulator/sessions/{sid}")[1].get("qr_code")


def test_admin_creates_a_session_connects_and_pairs_it_by_qr_without_a_reload(console_stack, watched):
    # more sessions than one page of the table (20), all older than the one created below: the
    # console must show the new one anyway (the list is oldest first; it opens the last page)
    for n in range(21):
        assert api_call(console_stack.base, "POST", "/sessions", TEST_ADMIN_KEY, {"name": f"older {n}"})[0] == 201
    page = watched.page
    _sign_in(page, console_stack.base + "/console", TEST_ADMIN_KEY)
    page.get_by_role("heading", name="Sessions").wait_for()
    screenshot(page, "01-sessions")

    name = f"Shop {uuid.uuid4().hex[:6]}"
    page.get_by_role("button", name="New session").click()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create session").click()
    once = page.get_by_role("alert").filter(has_text="created")
    once.wait_for()
    assert "will not be shown again" in once.inner_text()
    key = once.locator(".secret", has_text="API key").locator("code").inner_text()
    sid = once.locator(".secret", has_text="Session id").locator("code").inner_text()
    assert key.startswith("zses_") and api_call(console_stack.base, "GET", f"/sessions/{sid}", key)[0] == 200
    screenshot(page, "02-session-created-key-shown-once")
    page.get_by_role("button", name="I saved them").click()
    assert key not in page.content()  # shown once: gone once dismissed

    page.get_by_role("link", name=name).click()
    page.get_by_role("button", name="Connect", exact=True).click()
    page.evaluate("window.__noReload = true")
    image = page.get_by_role("img", name=re.compile("QR code"))
    image.wait_for()
    first = wait_for(lambda: (lambda shown: shown if shown == _emulator_code(console_stack, sid) else None)(
        decode_qr(image.get_attribute("src"))), timeout=15, message="the page shows the emulator's current code")
    assert first.startswith("2@")
    assert re.search(r"This code changes in \d+ s", page.locator(".countdown").inner_text())
    screenshot(page, "03-session-qr")
    # codes rotate (EMULATOR_QR_ROTATE=4s): the page follows without a reload
    wait_for(lambda: (lambda shown: shown != first and shown == _emulator_code(console_stack, sid))(
        decode_qr(image.get_attribute("src"))), timeout=15, message="the rotated code replaces the old one")

    status, _ = console_stack.runner.emulator("POST", f"/emulator/sessions/{sid}/scan", {"phone": "5511987650001"})
    assert status == 200
    page.get_by_text("Authenticated as +5511987650001").wait_for(timeout=5000)
    assert page.evaluate("window.__noReload") is True
    assert page.locator(".qr").is_hidden()
    screenshot(page, "04-session-authenticated")


def test_send_a_text_from_the_page_and_see_message_sent_in_the_timeline(console_stack, watched):
    created = _create(console_stack.base, name="Sender")
    sid = created["session_id"]
    _pair(console_stack, created, "5511987650002")
    page = watched.page
    _sign_in(page, console_stack.base + "/console", created["api_key"], sid)  # a session key works here too
    page.get_by_role("link", name="Send").click()
    page.get_by_label("To (phone number)").fill("+55 11 91234-0001")
    page.get_by_label("Message", exact=True).fill("hello from the console")
    page.get_by_role("button", name="Send", exact=True).click()
    message_id = page.locator(".message-id")
    message_id.wait_for()
    screenshot(page, "05-send")
    outbox = wait_for(lambda: console_stack.runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")[1]["messages"],
                      message="the emulator's outbox")
    sent = [m for m in outbox if "hello from the console" in str(m)]
    assert sent, outbox
    assert message_id.inner_text() and message_id.inner_text() in str(sent[0])

    page.get_by_role("link", name="Events").click()
    sent_item = page.locator('li.event[data-event="message.sent"]')
    sent_item.first.wait_for()
    shown = [json.loads(text) for text in page.locator("li.event pre").all_text_contents()]
    sequences = [e["metadata"]["sequence"] for e in shown]
    assert sequences == sorted(sequences, reverse=True) and len(set(sequences)) == len(sequences)  # newest first
    sent_item.first.locator("button").click()
    assert "hello from the console" in sent_item.first.locator("pre").inner_text() or \
        message_id.inner_text() in sent_item.first.locator("pre").inner_text()
    screenshot(page, "06-events")


def test_send_an_image_uploaded_from_the_browser(console_stack, watched, tmp_path):
    from chalicelib.qr import png_bytes

    created = _create(console_stack.base, name="Pictures")
    sid = created["session_id"]
    _pair(console_stack, created, "5511987650003")
    picture = tmp_path / "picture.png"
    picture.write_bytes(png_bytes("a picture"))
    page = watched.page
    _sign_in(page, console_stack.base + "/console", TEST_ADMIN_KEY)
    page.goto(f"{console_stack.base}/console#/s/{sid}/send")
    page.get_by_label("To (phone number)").fill("5511912340002")
    page.get_by_label("Type").select_option("image")
    page.get_by_label("Image").set_input_files(str(picture))
    page.get_by_label("Caption (optional)").fill("a caption")
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator(".message-id").wait_for(timeout=30000)
    assert page.get_by_text("Uploaded picture.png").count() == 1
    screenshot(page, "05b-send-image")
    outbox = console_stack.runner.emulator("GET", f"/emulator/sessions/{sid}/outbox")[1]["messages"]
    assert [m for m in outbox if m.get("type") == "image" and "a caption" in str(m)], outbox


def test_a_failed_webhook_delivery_is_redelivered_from_the_list_and_succeeds(console_stack, watched):
    receiver = console_stack.receiver
    path = f"/hook-{uuid.uuid4().hex[:6]}"
    receiver.set_behaviour(path, lambda n: (500, {}, 0.0) if n == 1 else (200, {}, 0.0))
    created = _create(console_stack.base, name="Hooked", webhook={"url": receiver.url(path), "events": []})
    sid = created["session_id"]
    page = watched.page
    _sign_in(page, console_stack.base + "/console", TEST_ADMIN_KEY)
    page.goto(f"{console_stack.base}/console#/s/{sid}/webhook")
    failed = page.locator('tr[data-status="failed"]')
    failed.first.wait_for(timeout=30000)
    assert "HTTP 500" in failed.first.inner_text()
    screenshot(page, "07-webhook-failed")
    delivery_id = failed.first.get_attribute("data-id")
    failed.first.get_by_role("button", name=re.compile("Redeliver")).click()
    page.locator(f'tr[data-id="{delivery_id}"][data-status="succeeded"]').wait_for(timeout=30000)
    assert len(receiver.on(path)) == 2
    assert receiver.on(path)[0].webhook_id == receiver.on(path)[1].webhook_id  # the same event, again
    screenshot(page, "08-webhook-redelivered")

    page.get_by_role("link", name="Proxy").click()
    page.get_by_role("button", name="Test proxy").click()
    page.get_by_text("No proxy is saved for this session").wait_for()
    page.get_by_label("Host").fill("127.0.0.1")
    page.get_by_label("Port").fill(str(free_port()))  # nothing listens there
    page.get_by_role("button", name="Test proxy").click()
    page.locator(".result code", has_text="proxy_refused").wait_for()
    screenshot(page, "09-proxy-test")


def test_a_session_key_sees_only_its_session_and_a_wrong_key_is_refused(console_stack, watched):
    mine, other = _create(console_stack.base, name="Mine"), _create(console_stack.base, name="Other")
    page = watched.page
    _sign_in(page, console_stack.base + "/console", "zses_" + "x" * 40)
    page.get_by_text("That key is not valid").wait_for()
    screenshot(page, "10-wrong-key")
    page.get_by_label("API key").fill(mine["api_key"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("This is a session key").wait_for()
    page.get_by_label("Session id").fill(other["session_id"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("This key belongs to another session").wait_for()
    page.get_by_label("Session id").fill(mine["session_id"])
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Mine").wait_for()
    signed_in_at = len(watched.requests)
    assert page.get_by_role("link", name="All sessions").count() == 0
    for elsewhere in ("#/", f"#/s/{other['session_id']}"):
        page.evaluate(f"location.hash = {elsewhere!r}")
        page.wait_for_function(f"location.hash === '#/s/{mine['session_id']}'")
        page.get_by_role("heading", name="Mine").wait_for()
    # signed in, the console asks only for its own session (never the list, never the other one)
    asked = watched.requests[signed_in_at:]
    assert asked and all(f"/sessions/{mine['session_id']}" in u for u in asked if "/console" not in u), asked
    assert page.evaluate("window.localStorage.length") == 0
    assert mine["api_key"] not in page.url
    screenshot(page, "11-session-key-overview")
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    assert page.evaluate("window.sessionStorage.length") == 0


HOSTILE = ["<img src=x onerror=alert(1)>", "\"><script>alert(2)</script>", "<b onmouseover=alert(3)>bold</b>"]


def test_hostile_text_renders_as_text_no_other_origin_and_no_console_errors(console_stack, watched):
    tag = uuid.uuid4().hex[:4]
    for name in HOSTILE:
        _create(console_stack.base, name=f"{name} {tag}")
    page = watched.page
    _sign_in(page, console_stack.base + "/console", TEST_ADMIN_KEY)
    page.get_by_label("Filter by name").fill(tag)
    for name in HOSTILE:
        page.get_by_role("link", name=f"{name} {tag}").wait_for()
    assert page.locator("img[src=x], script:not([src]), b[onmouseover]").count() == 0
    screenshot(page, "12-hostile-names")
    # delete asks first, naming the session (as text too)
    page.get_by_role("button", name=f"Delete session {HOSTILE[1]} {tag}").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    assert f"Delete “{HOSTILE[1]} {tag}”?" in dialog.inner_text()
    screenshot(page, "12b-delete-confirmation", full_page=False)
    dialog.get_by_role("button", name=f"Delete {HOSTILE[1]} {tag}").click()
    page.get_by_role("link", name=f"{HOSTILE[1]} {tag}").wait_for(state="detached")
    page.set_viewport_size({"width": 375, "height": 760})
    screenshot(page, "13-sessions-375px")
    page.get_by_role("link", name=f"{HOSTILE[0]} {tag}").click()
    page.get_by_role("heading", name=f"{HOSTILE[0]} {tag}").wait_for()
    page.get_by_text("Offline").first.wait_for()
    screenshot(page, "14-session-375px")
    page.set_viewport_size({"width": 1280, "height": 860})
    assert page.locator("img[src=x]").count() == 0
    assert watched.dialogs == []  # no alert() ever ran
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(console_stack.base))
    others = [u for u in watched.requests if not u.startswith(origin + "/") and not u.startswith("data:")]
    assert others == [], f"requests to other origins: {others}"
    errors = [text for kind, text in watched.console if kind == "error"]
    assert errors == [], f"browser console errors: {errors}"


def test_the_console_works_under_a_stage_prefix(console_stack, watched):
    _create(console_stack.base, name="Behind a stage")
    page = watched.page
    answer = page.goto(console_stack.proxy.url + "/console")
    headers = answer.headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    page.get_by_label("API key").fill(TEST_ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Sessions").wait_for()
    page.locator("table.sessions tbody tr a").first.wait_for()
    proxied = console_stack.proxy.paths
    assert "/api/console/assets/main.js" in proxied and any(p.startswith("/api/sessions?") for p in proxied)
    assert all(u.startswith(console_stack.proxy.url + "/") for u in watched.requests if not u.startswith("data:"))
    screenshot(page, "15-stage-prefix")
