"""SCRAM-SHA-256 (RFC 5802, RFC 7677) for the pgwire server: the token never crosses the wire.

The server has no TLS, so a cleartext password would be readable by anyone on the path; SCRAM
sends a proof bound to fresh nonces instead (libpq, psycopg and psql use it by default when the
server offers it). The token is the password; the user name is not checked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096


def _hmac(key: bytes, text: bytes) -> bytes:
    return hmac.new(key, text, hashlib.sha256).digest()


class Scram:
    """The server's side of one SCRAM exchange for `token`."""

    def __init__(self, token: str):
        self.salt = secrets.token_bytes(16)
        salted = hashlib.pbkdf2_hmac("sha256", token.encode(), self.salt, ITERATIONS)
        self.stored_key = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
        self.server_key = _hmac(salted, b"Server Key")

    def run(self, send: Callable[[int, bytes], None], receive: Callable[[], bytes]) -> bool:
        """Offer SCRAM, check the client's proof, send the server's signature: True when it matches.

        `send(code, data)` sends an Authentication message; `receive()` the body of the client's
        next password message ('p').
        """
        send(10, MECHANISM.encode() + b"\x00\x00")  # AuthenticationSASL: the one mechanism offered
        initial = receive()
        end = initial.index(b"\x00")
        if initial[:end].decode() != MECHANISM:
            return False
        (length,) = struct.unpack("!i", initial[end + 1:end + 5])
        client_first = initial[end + 5:end + 5 + length].decode()
        header, _, bare = client_first.partition(",,")  # "n,," or "y,,": no channel binding
        if not header.startswith(("n", "y")):
            return False
        attrs = dict(part.split("=", 1) for part in bare.split(",") if "=" in part)
        nonce = attrs.get("r", "") + base64.b64encode(secrets.token_bytes(18)).decode()
        server_first = f"r={nonce},s={base64.b64encode(self.salt).decode()},i={ITERATIONS}"
        send(11, server_first.encode())  # AuthenticationSASLContinue
        client_final = receive().decode()
        without_proof, _, proof = client_final.rpartition(",p=")
        final = dict(part.split("=", 1) for part in without_proof.split(",") if "=" in part)
        if final.get("r") != nonce or not proof:
            return False
        message = f"{bare},{server_first},{without_proof}".encode()
        signature = _hmac(self.stored_key, message)
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), self.stored_key):
            return False
        server_signature = base64.b64encode(_hmac(self.server_key, message)).decode()
        send(12, f"v={server_signature}".encode())  # AuthenticationSASLFinal
        return True
