"""Calls on the neonize side, offline: a real CallOfferEv translated and handed to the
session actor reaches `reject_call` with the caller's JID exactly as the offer gave it
(whatsmeow needs it so: a device or LID JID), and `reject_call` on a real neonize client
that never logged in encodes our arguments and comes back as whatsmeow's readable refusal."""
from __future__ import annotations

import uuid

import pytest
from neonize.events import CallOfferEv
from neonize.proto.Neonize_pb2 import JID, BasicCallMeta

from runner_container import machine as m
from runner_container.drivers.base import DriverError, SessionConfig
from runner_container.drivers.neonize_driver import NeonizeClient, NeonizeDriver, parse_jid
from runner_container.translate import translate
from tests.unit.fakes import MemoryStore, drain, make_ports, session_row

CALLER = JID(User="5511999990000", Device=12, Server="s.whatsapp.net", IsEmpty=False)
LID_CALLER = JID(User="123456789012345", Server="lid", IsEmpty=False)


@pytest.mark.parametrize("caller, expected", [(CALLER, "5511999990000:12@s.whatsapp.net"),
                                              (LID_CALLER, "123456789012345@lid")])
def test_a_real_call_offer_is_rejected_with_the_offers_own_jid(caller, expected):
    offer = CallOfferEv(basicCallMeta=BasicCallMeta(callID="AB12CD34", timestamp=1767225600, **{"from": caller}))
    [(kind, event)] = translate(offer, lambda jid: None)
    row = session_row(reject_calls=True)
    ports = make_ports(MemoryStore(row))
    actor = ports.actors.actor_for(row["session_id"])
    actor.step(m.StartConnect("requested", actor.load(), True, m.ProxyPlan()))
    client = ports.driver.clients[-1]
    client.sink("connected", {"jid": "5511999990001@s.whatsapp.net"})
    client.sink(kind, event)
    drain(actor)
    assert ("reject_call", expected, "AB12CD34") in client.calls
    assert ports.store.events()[-2:] == ["call.offer", "call.rejected"]
    # parse_jid gives whatsmeow back the JID the offer carried, device and server included
    assert parse_jid(expected) == JID(User=caller.User, Device=caller.Device, Server=caller.Server,
                                      RawAgent=0, Integrator=0, IsEmpty=False)


def test_reject_call_on_a_real_neonize_client_is_whatsmeows_refusal(stack, db):
    driver = NeonizeDriver(stack.env["DATABASE_URL"], db)
    client = NeonizeClient(driver, SessionConfig(f"calls-{uuid.uuid4().hex[:8]}", None, None), lambda k, d: None)
    with pytest.raises(DriverError) as before:
        client.reject_call("5511999990000:12@s.whatsapp.net", "AB12CD34")
    assert before.value.code == "not_connected"
    client.client = client._build()
    client.socket_up.set()  # pretend the socket is up: whatsmeow itself answers
    with pytest.raises(DriverError) as refused:
        client.reject_call("5511999990000:12@s.whatsapp.net", "AB12CD34")
    assert refused.value.code in ("not_connected", "not_logged_in", "reject_call_failed"), refused.value.message
    assert "EncodeError" not in refused.value.message and "missing required" not in refused.value.message
    print("whatsmeow answered:", refused.value.code, refused.value.message)
