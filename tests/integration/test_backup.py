"""Export and import of session configuration: the round trip (export -> delete -> import ->
same configuration, webhooks signed with the same secret, verified by `standardwebhooks` at a
real receiver), secrets only sealed with a passphrase, conflicts per session, paging."""
from __future__ import annotations

import base64
import hashlib
import json
import logging

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.services.auth import key_digest
from tests.conftest import session_headers
from tests.support.webhook_receiver import wait_until

PASSPHRASE = "correct horse battery staple"
CONFIGURED = ("name", "auto_reconnect", "metadata")


def _with_passphrase(headers: dict, passphrase: str = PASSPHRASE) -> dict:
    return {**headers, "X-Export-Passphrase": passphrase}


def _configured(view: dict) -> dict:
    proxy = {k: view["proxy"][k] for k in ("enabled", "type", "host", "port", "username", "has_password")}
    return {**{k: view[k] for k in CONFIGURED}, "webhook": {k: view["webhook"][k] for k in ("url", "events")},
            "proxy": proxy}


def _full_session(make_session, receiver, path: str) -> dict:
    created = make_session(
        name="Shop 1", auto_reconnect=False, metadata={"tier": "gold", "tags": ["a", None], "n": 3},
        webhook={"url": receiver.url(path), "events": ["message.*", "session.created"]},
        proxy={"type": "socks5", "host": "127.0.0.1", "port": 1080, "username": "pu", "password": "proxy-pass-123"})
    receiver.set_secrets(path, created["webhook_secret"])
    return created


def test_round_trip_keeps_configuration_key_and_webhook_secret(container, api, admin_headers, make_session,
                                                               receiver, bridge, db):
    created = _full_session(make_session, receiver, "/round-trip")
    sid, secret = created["session_id"], created["webhook_secret"]
    before = api.get(f"/sessions/{sid}", headers=admin_headers).json_body

    exported = api.get(f"/sessions/{sid}/export?include_secrets=true", headers=_with_passphrase(admin_headers))
    assert exported.status_code == 200, exported.body
    document = exported.json_body
    text = json.dumps(document)
    for plain in (secret, "proxy-pass-123", created["api_key"], key_digest(created["api_key"]), PASSPHRASE):
        assert plain not in text  # sealed, never in plaintext
    assert document["encryption"]["kdf"] == "scrypt" and document["encryption"]["cipher"] == "AES-256-GCM"

    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    assert api.get(f"/sessions/{sid}", headers=session_headers(created)).status_code == 401

    imported = api.post("/sessions/import", headers=_with_passphrase(admin_headers), body=json.dumps(document))
    assert imported.status_code == 200, imported.body
    answer = imported.json_body
    assert (answer["created"], answer["conflicts"], answer["failed"]) == (1, 0, 0)
    result = answer["results"][0]
    assert result["status"] == "created" and result["key_kept"] is True
    assert "api_key" not in result and "webhook_secret" not in result  # nothing new to show
    assert result["id"] != before["id"]  # a new row: nothing of the old one comes with it

    after = api.get(f"/sessions/{sid}", headers=session_headers(created))  # the exported key still works
    assert after.status_code == 200, after.body
    assert _configured(after.json_body) == _configured(before)
    assert after.json_body["status"] == "disconnected" and after.json_body["id"] == result["id"]
    row = container.session_repo.get(sid)
    assert container.secret_box().decrypt(row["proxy_password_enc"], context=f"proxy:{sid}") == "proxy-pass-123"

    # the receiver knows only the original secret: an event of the imported session verifies with it
    envelope = container.events.publish(sid, "message.received", {"from": "5511999999999", "text": "back"})
    receiver.wait_for(lambda: any(r.webhook_id == envelope["id"] for r in receiver.on("/round-trip")), 20,
                      "the imported session's event at the receiver")
    delivered = next(r for r in receiver.on("/round-trip") if r.webhook_id == envelope["id"])
    assert delivered.verified, delivered.verify_error
    assert delivered.json["metadata"]["session_uid"] == result["id"]


def test_without_secrets_an_import_shows_a_new_key_and_webhook_secret(container, api, admin_headers,
                                                                      make_session, receiver):
    created = _full_session(make_session, receiver, "/plain")
    sid = created["session_id"]
    document = api.get(f"/sessions/{sid}/export", headers=admin_headers).json_body
    assert "encryption" not in document and "secrets" not in document["sessions"][0]
    assert "password" not in document["sessions"][0]["proxy"]
    assert document["sessions"][0]["webhook"] == {"url": receiver.url("/plain"),
                                                  "events": ["message.*", "session.created"]}
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    result = api.post("/sessions/import", headers=admin_headers, body=json.dumps(document)).json_body["results"][0]
    assert result["status"] == "created" and result["key_kept"] is False
    assert result["api_key"].startswith("zses_") and result["webhook_secret"].startswith("whsec_")
    assert api.get(f"/sessions/{sid}", headers=session_headers(created)).status_code == 401
    view = api.get(f"/sessions/{sid}", headers=session_headers(result)).json_body
    assert view["proxy"]["has_password"] is False and view["proxy"]["host"] == "127.0.0.1"


def test_conflicts_are_answered_per_session(api, admin_headers, make_session):
    kept, gone = make_session(name="kept"), make_session(name="gone")
    plain = [api.get(f"/sessions/{s['session_id']}/export", headers=admin_headers).json_body for s in (kept, gone)]
    document = {**plain[0], "sessions": plain[0]["sessions"] + plain[1]["sessions"] + plain[1]["sessions"]}
    assert api.delete(f"/sessions/{gone['session_id']}", headers=admin_headers).status_code == 204
    answer = api.post("/sessions/import", headers=admin_headers, body=json.dumps(document)).json_body
    by_status = [(r["session_id"], r["status"], r.get("code")) for r in answer["results"]]
    assert by_status == [(kept["session_id"], "conflict", "session_exists"),
                         (gone["session_id"], "created", None),
                         (gone["session_id"], "conflict", "duplicate_in_document")]
    assert (answer["created"], answer["conflicts"], answer["failed"]) == (1, 2, 0)


def test_a_kept_key_another_session_now_uses_is_a_conflict(api, admin_headers, make_session):
    key = "zses_custom-" + "k" * 30
    created = make_session(api_key=key)
    document = api.get(f"/sessions/{created['session_id']}/export?include_secrets=true",
                       headers=_with_passphrase(admin_headers)).json_body
    assert api.delete(f"/sessions/{created['session_id']}", headers=admin_headers).status_code == 204
    make_session(api_key=key)  # another session_id, the same key
    answer = api.post("/sessions/import", headers=_with_passphrase(admin_headers), body=json.dumps(document)).json_body
    assert [(r["status"], r["code"]) for r in answer["results"]] == [("conflict", "api_key_taken")]
    assert api.get(f"/sessions/{created['session_id']}", headers=admin_headers).status_code == 404


def test_secrets_need_a_passphrase_and_a_wrong_one_imports_nothing(api, admin_headers, make_session, receiver):
    created = _full_session(make_session, receiver, "/pass")
    sid = created["session_id"]
    path = f"/sessions/{sid}/export?include_secrets=true"
    missing = api.get(path, headers=admin_headers)
    assert missing.status_code == 422 and missing.json_body["code"] == "passphrase_required"
    weak = api.get(path, headers=_with_passphrase(admin_headers, "short"))
    assert weak.status_code == 422 and weak.json_body["code"] == "weak_passphrase"
    document = api.get(path, headers=_with_passphrase(admin_headers)).json_body
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    wrong = api.post("/sessions/import", headers=_with_passphrase(admin_headers, "not the passphrase at all"),
                     body=json.dumps(document))
    assert wrong.status_code == 422 and wrong.json_body["code"] == "wrong_passphrase"
    none = api.post("/sessions/import", headers=admin_headers, body=json.dumps(document))
    assert none.status_code == 422 and none.json_body["code"] == "passphrase_required"
    assert api.get(f"/sessions/{sid}", headers=admin_headers).status_code == 404  # nothing was imported
    # a password in plaintext is not an export, and is refused
    plain = api.get(f"/sessions/{make_session()['session_id']}/export", headers=admin_headers).json_body
    plain["sessions"][0]["session_id"] = sid
    plain["sessions"][0]["proxy"] = {"type": "http", "host": "127.0.0.1", "port": 8080, "password": "x"}
    refused = api.post("/sessions/import", headers=admin_headers, body=json.dumps(plain))
    assert refused.status_code == 422 and "sessions.0.proxy.password" in refused.body.decode()
    # the key may only be given as admin
    assert api.get(path, headers=_with_passphrase(session_headers(created))).status_code in (401, 403)


def test_sealed_secrets_open_with_the_documented_construction(api, admin_headers, make_session, receiver):
    """README: scrypt(passphrase, salt, N, r, p, 32 bytes) -> AES-256-GCM(nonce, aad 'zemeow-export-v1:<id>')."""
    created = _full_session(make_session, receiver, "/doc")
    document = api.get(f"/sessions/{created['session_id']}/export?include_secrets=true",
                       headers=_with_passphrase(admin_headers)).json_body
    enc, session = document["encryption"], document["sessions"][0]
    key = hashlib.scrypt(PASSPHRASE.encode(), salt=base64.b64decode(enc["salt"]), n=enc["n"], r=enc["r"],
                         p=enc["p"], maxmem=64 * 1024 * 1024, dklen=32)
    plaintext = AESGCM(key).decrypt(base64.b64decode(session["secrets"]["nonce"]),
                                    base64.b64decode(session["secrets"]["ciphertext"]),
                                    f"zemeow-export-v1:{created['session_id']}".encode())
    assert json.loads(plaintext) == {"webhook_secret": created["webhook_secret"], "proxy_password": "proxy-pass-123",
                                     "api_key_digest": key_digest(created["api_key"])}


def test_export_of_every_session_is_paged_and_admin_only(api, admin_headers, make_session):
    first, second = make_session(), make_session()
    total = api.get("/sessions?limit=1", headers=admin_headers).json_body["total"]
    page = api.get("/sessions/export?limit=1", headers=admin_headers).json_body
    assert page["total"] == total >= 2 and len(page["sessions"]) == 1 and page["next_offset"] == 1
    everything = api.get(f"/sessions/export?limit={total}", headers=admin_headers).json_body
    assert "next_offset" not in everything
    assert {first["session_id"], second["session_id"]} <= {s["session_id"] for s in everything["sessions"]}
    assert api.get("/sessions/export", headers=session_headers(first)).status_code == 403
    assert api.get(f"/sessions/{first['session_id']}/export", headers=session_headers(first)).status_code == 403


def test_the_passphrase_is_never_logged_or_audited(api, admin_headers, make_session, receiver, db, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    created = _full_session(make_session, receiver, "/quiet")
    sid = created["session_id"]
    document = api.get(f"/sessions/{sid}/export?include_secrets=true", headers=_with_passphrase(admin_headers)).json_body
    api.delete(f"/sessions/{sid}", headers=admin_headers)
    api.post("/sessions/import", headers=_with_passphrase(admin_headers, PASSPHRASE + " wrong"),
             body=json.dumps(document))
    assert api.post("/sessions/import", headers=_with_passphrase(admin_headers),
                    body=json.dumps(document)).status_code == 200
    captured = capsys.readouterr()
    text = captured.out + captured.err + caplog.text
    with db.connection() as conn:
        text += "".join(r["t"] for r in conn.execute("SELECT row_to_json(a)::text AS t FROM audit_log a"))
        text += "".join(r["t"] for r in conn.execute("SELECT row_to_json(o)::text AS t FROM event_outbox o"))
    for secret in (PASSPHRASE, created["webhook_secret"], "proxy-pass-123"):
        assert secret not in text
    imported = wait_until(lambda: api.get(f"/sessions/{sid}", headers=admin_headers).status_code == 200, 5,
                          "the imported session")
    assert imported


def test_the_route_names_are_not_session_ids(api, admin_headers, make_session):
    for reserved in ("export", "import"):
        refused = api.post("/sessions", headers=admin_headers, body=json.dumps({"name": "x", "session_id": reserved}))
        assert refused.status_code == 422 and refused.json_body["details"][0]["field"] == "session_id"
    document = api.get(f"/sessions/{make_session()['session_id']}/export", headers=admin_headers).json_body
    document["sessions"][0]["session_id"] = "export"
    assert api.post("/sessions/import", headers=admin_headers, body=json.dumps(document)).status_code == 422
    document["sessions"][0]["session_id"] = "fine-id"
    document["sessions"][0]["webhook"] = {"url": "http://127.0.0.1:9/h", "events": [], "secret": "whsec_" + "A" * 40}
    plaintext = api.post("/sessions/import", headers=admin_headers, body=json.dumps(document))
    assert plaintext.status_code == 422 and "sessions.0.webhook.secret" in plaintext.body.decode()


def test_costly_or_malformed_encryption_parameters_are_refused_before_any_work(api, admin_headers, make_session):
    created = make_session()
    document = api.get(f"/sessions/{created['session_id']}/export?include_secrets=true",
                       headers=_with_passphrase(admin_headers)).json_body
    api.delete(f"/sessions/{created['session_id']}", headers=admin_headers)
    for change in ({"n": 2 ** 20, "r": 32}, {"n": 1000}, {"salt": "not base64!"}, {"salt": ""}):
        bad = {**document, "encryption": {**document["encryption"], **change}}
        answer = api.post("/sessions/import", headers=_with_passphrase(admin_headers), body=json.dumps(bad))
        assert answer.status_code == 422 and answer.json_body["code"] == "unsupported_encryption", (change, answer.body)
    assert api.get(f"/sessions/{created['session_id']}", headers=admin_headers).status_code == 404


def test_the_export_of_every_session_imports_as_it_is(api, admin_headers, make_session, receiver):
    gone = [_full_session(make_session, receiver, f"/all-{n}") for n in range(2)]
    stays = make_session()
    total = api.get("/sessions?limit=1", headers=admin_headers).json_body["total"]
    document = api.get(f"/sessions/export?include_secrets=true&limit={total}",
                       headers=_with_passphrase(admin_headers)).json_body
    for created in gone:
        assert api.delete(f"/sessions/{created['session_id']}", headers=admin_headers).status_code == 204
    answer = api.post("/sessions/import", headers=_with_passphrase(admin_headers), body=json.dumps(document)).json_body
    results = {r["session_id"]: r for r in answer["results"]}
    assert answer["created"] == 2 and answer["conflicts"] == total - 2 and answer["failed"] == 0
    for created in gone:
        assert results[created["session_id"]]["status"] == "created" and results[created["session_id"]]["key_kept"]
        view = api.get(f"/sessions/{created['session_id']}", headers=session_headers(created)).json_body
        assert view["name"] == "Shop 1" and view["proxy"]["has_password"] is True
    assert results[stays["session_id"]]["code"] == "session_exists"


def test_an_unreadable_secret_is_left_out_with_a_warning_not_a_500(container, api, admin_headers, make_session,
                                                                   receiver, db):
    """A secret sealed under an older ENCRYPTION_KEY (or damaged) cannot be exported; the
    other sessions and the other secrets still are, and the document says what is missing."""
    broken = _full_session(make_session, receiver, "/broken")
    fine = _full_session(make_session, receiver, "/fine")
    with db.connection() as conn:  # as if sealed under another key
        conn.execute("UPDATE sessions SET webhook_secret_enc = %s WHERE session_id = %s",
                     (container.secret_box().encrypt("whsec_" + "A" * 43, context="webhook:someone-else"),
                      broken["session_id"]))
    answer = api.get(f"/sessions/{broken['session_id']}/export?include_secrets=true",
                     headers=_with_passphrase(admin_headers))
    assert answer.status_code == 200, answer.body
    assert answer.json_body["warnings"] == [{
        "session_id": broken["session_id"], "code": "secret_unreadable", "secret": "webhook_secret",
        "message": answer.json_body["warnings"][0]["message"]}]
    assert "ENCRYPTION_KEY" in answer.json_body["warnings"][0]["message"]
    every = api.get("/sessions/export?include_secrets=true&limit=1000", headers=_with_passphrase(admin_headers))
    assert every.status_code == 200, every.body
    assert [w["session_id"] for w in every.json_body["warnings"]] == [broken["session_id"]]
    assert fine["session_id"] in {s["session_id"] for s in every.json_body["sessions"]}

    document = answer.json_body
    assert api.delete(f"/sessions/{broken['session_id']}", headers=admin_headers).status_code == 204
    result = api.post("/sessions/import", headers=_with_passphrase(admin_headers),
                      body=json.dumps(document)).json_body["results"][0]
    assert result["status"] == "created" and result["key_kept"] is True
    assert result["webhook_secret"].startswith("whsec_")  # a new one, shown once
    row = container.session_repo.get(broken["session_id"])  # the proxy password survived
    assert container.secret_box().decrypt(row["proxy_password_enc"],
                                          context=f"proxy:{broken['session_id']}") == "proxy-pass-123"


def test_an_import_meets_the_same_proxy_guard_as_a_create(api, admin_headers, make_session):
    """The metadata address is never a proxy, whatever PROXY_ALLOW_PRIVATE says: POST /sessions
    refuses it, and so must an import (a hand-written document could carry it)."""
    created = make_session(name="guarded")
    document = api.get(f"/sessions/{created['session_id']}/export", headers=admin_headers).json_body
    direct = api.post("/sessions", headers=admin_headers, body=json.dumps(
        {"name": "direct", "proxy": {"type": "http", "host": "169.254.169.254", "port": 80}}))
    assert direct.status_code == 422, direct.body
    document["sessions"][0].update(session_id=created["session_id"] + "-x",
                                   proxy={"enabled": True, "type": "http", "host": "169.254.169.254", "port": 80,
                                          "username": None})
    answer = api.post("/sessions/import", headers=admin_headers, body=json.dumps(document))
    assert answer.status_code == 200, answer.body
    result = answer.json_body["results"][0]
    assert result["status"] == "failed" and result["code"] == direct.json_body["code"], result
    assert api.get(f"/sessions/{created['session_id']}-x", headers=admin_headers).status_code == 404


def test_behaviour_settings_travel_with_the_export(api, admin_headers, make_session):
    created = make_session()
    sid = created["session_id"]
    settings = {"always_online": True, "ignore_groups": True, "auto_read": True, "reject_calls": True,
                "reject_call_message": "No calls, please", "send_rate": 20, "typing_simulation": True}
    assert api.put(f"/sessions/{sid}", headers=admin_headers, body=json.dumps(settings)).status_code == 200
    document = api.get(f"/sessions/{sid}/export", headers=admin_headers).json_body
    assert document["sessions"][0]["behaviour"] == {**settings, "ignore_status_broadcast": False}
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    imported = api.post("/sessions/import", headers=admin_headers, body=json.dumps(document))
    assert imported.status_code == 200 and imported.json_body["created"] == 1, imported.body
    after = api.get(f"/sessions/{sid}", headers=admin_headers).json_body
    assert {name: after[name] for name in settings} == settings

    # an export made before the settings existed imports with all of them off
    del document["sessions"][0]["behaviour"]
    assert api.delete(f"/sessions/{sid}", headers=admin_headers).status_code == 204
    assert api.post("/sessions/import", headers=admin_headers, body=json.dumps(document)).status_code == 200
    after = api.get(f"/sessions/{sid}", headers=admin_headers).json_body
    assert (after["always_online"], after["send_rate"], after["reject_call_message"]) == (False, None, None)
