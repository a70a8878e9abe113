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
import threading
import time
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


class LoginThrottle:
    """Failed password checks from one client address, spaced out by a delay that doubles with
    each failure (FIRST_DELAY, then twice that, up to MAX_DELAY); a success, or FORGET_AFTER
    seconds with no failure, starts the address afresh.

    Each attempt takes its turn: attempts from an address that has failed run one per delay even
    when they come on many connections at once, so guessing the token gets slow (psql could
    once try 33 passwords a second) while one mistyped password costs a fraction of a second.
    """

    FIRST_DELAY = 0.25
    MAX_DELAY = 10.0
    FORGET_AFTER = 600.0
    MAX_ADDRESSES = 10_000  # addresses remembered at most: the oldest are forgotten first

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._next: dict[str, float] = {}  # when the address's next attempt may run

    def delay(self, failures: int) -> float:
        return 0.0 if failures <= 0 else min(self.MAX_DELAY, self.FIRST_DELAY * 2 ** (failures - 1))

    def wait(self, address: str) -> None:
        """Sleep until this attempt's turn (none while the address has not failed)."""
        with self._lock:
            now = time.monotonic()
            failures = self._failures.get(address, 0)
            if failures and now - self._next.get(address, now) > self.FORGET_AFTER:
                failures = self._forget(address)
            if not failures:
                return
            turn = max(now, self._next[address])
            self._next[address] = turn + self.delay(failures)
        time.sleep(turn - now)

    def failed(self, address: str) -> None:
        with self._lock:
            now = time.monotonic()
            failures = self._failures.pop(address, 0) + 1
            self._failures[address] = failures  # re-inserted: the newest last
            self._next[address] = max(self._next.get(address, now), now + self.delay(failures))
            while len(self._failures) > self.MAX_ADDRESSES:
                self._forget(next(iter(self._failures)))

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._forget(address)

    def _forget(self, address: str) -> int:
        self._failures.pop(address, None)
        self._next.pop(address, None)
        return 0
