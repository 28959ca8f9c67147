"""The SCRAM server (RFC 5802/7677) against an independent client side: good
exchanges for both mechanisms, and every way to get it wrong — bad proof, bad nonce,
replayed messages, malformed input — fails with ScramError and never authenticates."""
from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pylog.security.scram import (MECHANISMS, ScramError, ScramServer, client_exchange,
                                  make_credential)
from pylog.security.users import UserStore

CREDS = {m: make_credential(m, "pencil") for m in MECHANISMS}


def server(mech="SCRAM-SHA-256", user="user"):
    return ScramServer(mech, lambda u: CREDS[mech] if u == user else None)


@pytest.mark.parametrize("mech", list(MECHANISMS))
def test_good_exchange(mech):
    s = server(mech)
    assert client_exchange(mech, "user", "pencil", s).startswith(b"v=")
    assert s.done and s.user == "user"


def test_rfc_7677_credential_vector():
    # RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096.
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    cred = make_credential("SCRAM-SHA-256", "pencil", 4096, salt)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    assert cred.stored_key == hashlib.sha256(client_key).digest()
    s = ScramServer("SCRAM-SHA-256", lambda u: cred)
    first = s.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").decode()
    assert first.startswith("r=rOprNGfwEbeRWgbNEkqO") and ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096" in first


def test_wrong_password_unknown_user_and_replay_fail():
    with pytest.raises(ScramError):
        client_exchange("SCRAM-SHA-256", "user", "wrong", server())
    with pytest.raises(ScramError):
        client_exchange("SCRAM-SHA-256", "nobody", "pencil", server())
    s = server()
    client_exchange("SCRAM-SHA-256", "user", "pencil", s)
    with pytest.raises(ScramError):
        s.step(b"c=biws,r=x,p=AAAA")                 # after the end: refused


def test_a_replayed_client_final_fails_on_a_new_exchange():
    sent = []

    class Recording(ScramServer):
        def step(self, message):
            sent.append(message)
            return super().step(message)

    client_exchange("SCRAM-SHA-256", "user", "pencil", Recording(
        "SCRAM-SHA-256", lambda u: CREDS["SCRAM-SHA-256"]))
    s = server()
    s.step(sent[0])                                  # same client-first, new server nonce
    with pytest.raises(ScramError):
        s.step(sent[1])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_arbitrary_messages_never_authenticate(first, final):
    s = server()
    try:
        s.step(first)
        s.step(final)
    except ScramError:
        pass
    assert not s.done


def test_users_file_round_trip_and_damage_is_refused(tmp_path):
    u = UserStore(tmp_path)
    u.set_password("alice", "secret")
    assert UserStore(tmp_path).check_password("alice", "secret")
    assert not UserStore(tmp_path).check_password("alice", "Secret")
    assert b"secret" not in (tmp_path / "users.json").read_bytes()
    raw = bytearray((tmp_path / "users.json").read_bytes())
    raw[raw.index(b'"iterations": 4096') + 15] ^= 1
    (tmp_path / "users.json").write_bytes(bytes(raw))
    from pylog.errors import StorageError
    with pytest.raises(StorageError, match="unreadable users file"):
        UserStore(tmp_path)
