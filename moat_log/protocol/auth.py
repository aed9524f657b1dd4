"""Authentication: SCRAM-SHA-256 with scrypt as the KDF, and HMAC'd tokens.

Theory of operation
-------------------
Nothing secret crosses the wire and the server never stores a password
(docs/client-protocol.md, "Authentication").  The scheme is SCRAM (RFC 5802,
RFC 7677) with scrypt in place of PBKDF2::

    SaltedPassword  = scrypt(UTF-8(NFC(password)), salt, N, r, p, 32 bytes)
    ClientKey       = HMAC-SHA-256(SaltedPassword, "Client Key")
    StoredKey       = SHA-256(ClientKey)
    ServerKey       = HMAC-SHA-256(SaltedPassword, "Server Key")
    ClientSignature = HMAC-SHA-256(StoredKey, AuthMessage)
    ClientProof     = ClientKey XOR ClientSignature
    ServerSignature = HMAC-SHA-256(ServerKey, AuthMessage)

The server stores only (params, salt, StoredKey, ServerKey) — a `Verifier`.
It recovers ClientKey = ClientProof XOR ClientSignature and checks
SHA-256(ClientKey) == StoredKey.  AuthMessage binds the server's per-connection
challenge, the client's nonce, the node and user names, the salt, the scrypt
parameters and the protocol version, so a recorded proof is worthless against
any other challenge, and a tampered salt or parameter set makes the proof fail.

Tokens (for scripts) use the same key schedule with ``SHA-256(token)`` in place
of SaltedPassword: no KDF, as a token is random and long.

Unknown users get a *decoy*: a salt derived from a server secret and the user
name, and keys that never match, so the exchange looks the same and fails with
the same message as a wrong password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from ..errors import ConfigError

__all__ = [
    "CHALLENGE_SIZE",
    "DEFAULT_SCRYPT_PARAMS",
    "NONCE_SIZE",
    "SCRAM_METHOD",
    "TOKEN_METHOD",
    "Authenticator",
    "ScramExchange",
    "ScryptParams",
    "TokenVerifier",
    "Verifier",
    "check_user_name",
    "make_token_verifier",
    "make_verifier",
    "salt_password",
    "scram_auth_message",
    "scram_client_proof",
    "token_auth_message",
    "token_client_proof",
]

#: Method names as they appear in the greeting and in ``auth`` requests.
SCRAM_METHOD: Final = "scram-scrypt"
TOKEN_METHOD: Final = "token"
#: The protocol version this implementation speaks: the greeting's "moat-log",
#: and bound into every AuthMessage.
PROTOCOL_VERSION: Final = 1

CHALLENGE_SIZE: Final = 32  # the server's random challenge in the greeting
NONCE_SIZE: Final = 32  # the client's random nonce
KEY_SIZE: Final = 32  # SHA-256 output: keys, proofs, signatures
SALT_SIZE: Final = 16  # what make_verifier draws
MIN_SALT_SIZE: Final = 16
MAX_SALT_SIZE: Final = 64

#: scrypt bounds.  N*r bounds the memory (128 * N * r bytes, 128 MiB here) so
#: that a hostile server cannot make a client allocate without limit.
MIN_SCRYPT_N: Final = 2**10
MAX_SCRYPT_N: Final = 2**20
MAX_SCRYPT_R: Final = 32
MAX_SCRYPT_P: Final = 16
MAX_SCRYPT_MEMORY: Final = 128 * 1024 * 1024

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def check_user_name(user: object) -> str:
    """Return *user* if it is a valid user name, else raise `ValueError`."""
    if type(user) is not str or _USER_NAME.fullmatch(user) is None:
        raise ValueError(
            f"invalid user name {user!r}: use 1-64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
    return user


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt's cost parameters.

    The defaults (N=2**14, r=8, p=1: 16 MiB, about 40 ms on a 2-core x86 VM)
    are chosen for Raspberry Pi class machines, where the *client* pays this
    once per login.
    """

    n: int = 2**14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        n, r, p = self.n, self.r, self.p
        if type(n) is not int or not MIN_SCRYPT_N <= n <= MAX_SCRYPT_N or n & (n - 1):
            raise ValueError(f"scrypt N={n!r} must be a power of 2 from 2**10 to 2**20")
        if type(r) is not int or not 1 <= r <= MAX_SCRYPT_R:
            raise ValueError(f"scrypt r={r!r} must be 1 .. {MAX_SCRYPT_R}")
        if type(p) is not int or not 1 <= p <= MAX_SCRYPT_P:
            raise ValueError(f"scrypt p={p!r} must be 1 .. {MAX_SCRYPT_P}")
        if self.memory > MAX_SCRYPT_MEMORY:
            raise ValueError(f"scrypt N={n}, r={r} needs {self.memory >> 20} MiB; at most 128")

    @property
    def memory(self) -> int:
        """Bytes of memory scrypt needs with these parameters."""
        return 128 * self.n * self.r


DEFAULT_SCRYPT_PARAMS: Final = ScryptParams()


def salt_password(password: str, salt: bytes, params: ScryptParams) -> bytes:
    """SaltedPassword: scrypt over the NFC-normalized UTF-8 password.  The slow step."""
    if type(password) is not str or not password:
        raise ValueError("the password must be a non-empty str")
    secret = unicodedata.normalize("NFC", password).encode()
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        dklen=KEY_SIZE,
        maxmem=params.memory + (1 << 20),  # OpenSSL wants a little more than 128*N*r
    )


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.digest(key, message, "sha256")


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(len(a), "big")


def _keys(base_key: bytes) -> tuple[bytes, bytes]:
    """ClientKey and ServerKey from SaltedPassword (or a token key)."""
    return _hmac(base_key, b"Client Key"), _hmac(base_key, b"Server Key")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str, size: int | None = None) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ConfigError(f"{what} is not valid base64: {exc}") from None
    if _b64(data) != text:
        raise ConfigError(f"{what} is not in canonical base64 (with '=' padding)")
    if size is not None and len(data) != size:
        raise ConfigError(f"{what} must be {size} bytes, not {len(data)}")
    return data


@dataclass(frozen=True, slots=True)
class Verifier:
    """What the server stores for a password user (never the password).

    Text form for configuration files::

        scram-scrypt$N$r$p$SALT$STOREDKEY$SERVERKEY

    with N, r, p in decimal and the byte strings in standard base64 with
    padding.
    """

    params: ScryptParams
    salt: bytes
    stored_key: bytes
    server_key: bytes

    def __post_init__(self) -> None:
        if type(self.salt) is not bytes or not MIN_SALT_SIZE <= len(self.salt) <= MAX_SALT_SIZE:
            raise ValueError(f"the salt must be {MIN_SALT_SIZE} .. {MAX_SALT_SIZE} bytes")
        for name in ("stored_key", "server_key"):
            key = getattr(self, name)
            if type(key) is not bytes or len(key) != KEY_SIZE:
                raise ValueError(f"{name} must be {KEY_SIZE} bytes")

    def __str__(self) -> str:
        p = self.params
        keys = f"{_b64(self.salt)}${_b64(self.stored_key)}${_b64(self.server_key)}"
        return f"{SCRAM_METHOD}${p.n}${p.r}${p.p}${keys}"

    def __repr__(self) -> str:
        return f"Verifier({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> Verifier:
        """Read the text form; raise `ConfigError` naming what is wrong."""
        parts = text.strip().split("$")
        if len(parts) != 7 or parts[0] != SCRAM_METHOD:
            raise ConfigError(
                f"a password verifier looks like '{SCRAM_METHOD}$N$r$p$salt$storedkey$serverkey'"
                " (make one with `moat-log` or moat_log.protocol.make_verifier)"
            )
        numbers: list[int] = []
        for name, digits in zip(("N", "r", "p"), parts[1:4], strict=True):
            if not digits.isascii() or not digits.isdigit() or digits != str(int(digits)):
                raise ConfigError(f"verifier: scrypt {name}={digits!r} is not a decimal number")
            numbers.append(int(digits))
        try:
            return cls(
                ScryptParams(*numbers),
                _unb64(parts[4], "verifier salt"),
                _unb64(parts[5], "verifier stored key", KEY_SIZE),
                _unb64(parts[6], "verifier server key", KEY_SIZE),
            )
        except ValueError as exc:
            raise ConfigError(f"verifier: {exc}") from None


def make_verifier(
    password: str,
    *,
    salt: bytes | None = None,
    params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
) -> Verifier:
    """The verifier a server stores for *password* (a fresh random salt by default)."""
    if salt is None:
        salt = os.urandom(SALT_SIZE)
    client_key, server_key = _keys(salt_password(password, salt, params))
    return Verifier(params, salt, _sha256(client_key), server_key)


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    """What the server stores for a token user: ``SHA-256(token)``.

    Text form: ``token$KEY`` (base64).  Anyone holding it can log in as that
    user, like with the token itself, but it does not reveal the token.
    """

    key: bytes

    def __post_init__(self) -> None:
        if type(self.key) is not bytes or len(self.key) != KEY_SIZE:
            raise ValueError(f"a token key must be {KEY_SIZE} bytes")

    def __str__(self) -> str:
        return f"{TOKEN_METHOD}${_b64(self.key)}"

    def __repr__(self) -> str:
        return f"TokenVerifier({str(self)!r})"

    @classmethod
    def parse(cls, text: str) -> TokenVerifier:
        """Read the text form; raise `ConfigError` if it is not one."""
        method, sep, key = text.strip().partition("$")
        if method != TOKEN_METHOD or not sep:
            raise ConfigError("a token verifier looks like 'token$KEY' (KEY in base64)")
        return cls(_unb64(key, "token key", KEY_SIZE))


def token_key(token: str) -> bytes:
    """The key both sides derive from a token: SHA-256 of its UTF-8 bytes."""
    if type(token) is not str or not token:
        raise ValueError("the token must be a non-empty str")
    return _sha256(token.encode())


def make_token_verifier(token: str) -> TokenVerifier:
    """The verifier a server stores for *token*."""
    return TokenVerifier(token_key(token))


# --- AuthMessage ---------------------------------------------------------


def _field(data: bytes) -> bytes:
    """A length-prefixed field: 4-byte big-endian length, then the bytes."""
    return len(data).to_bytes(4, "big") + data


def _u32(number: int) -> bytes:
    return number.to_bytes(4, "big")


def _common(label: bytes, node: str, user: str, challenge: bytes, client_nonce: bytes) -> bytes:
    return b"".join(
        (
            _field(label),
            _u32(PROTOCOL_VERSION),
            _field(node.encode()),
            _field(user.encode()),
            _field(challenge),
            _field(client_nonce),
        )
    )


def scram_auth_message(
    *,
    node: str,
    user: str,
    challenge: bytes,
    client_nonce: bytes,
    salt: bytes,
    params: ScryptParams,
) -> bytes:
    """AuthMessage for ``scram-scrypt`` (docs/client-protocol.md, "AuthMessage")."""
    head = _common(b"moat-log scram-scrypt", node, user, challenge, client_nonce)
    return head + _field(salt) + _u32(params.n) + _u32(params.r) + _u32(params.p)


def token_auth_message(*, node: str, user: str, challenge: bytes, client_nonce: bytes) -> bytes:
    """AuthMessage for ``token``."""
    return _common(b"moat-log token", node, user, challenge, client_nonce)


def scram_client_proof(salted_password: bytes, auth_message: bytes) -> tuple[bytes, bytes]:
    """Client side: ``(ClientProof, expected ServerSignature)``."""
    client_key, server_key = _keys(salted_password)
    signature = _hmac(_sha256(client_key), auth_message)
    return _xor(client_key, signature), _hmac(server_key, auth_message)


def token_client_proof(token: str, auth_message: bytes) -> tuple[bytes, bytes]:
    """Client side for tokens: ``(ClientProof, expected ServerSignature)``."""
    client_key, server_key = _keys(token_key(token))
    return _hmac(client_key, auth_message), _hmac(server_key, auth_message)


def verify_scram_proof(verifier: Verifier, auth_message: bytes, proof: bytes) -> bool:
    """Server side: does *proof* show knowledge of the password? Constant time."""
    if len(proof) != KEY_SIZE:
        return False
    client_key = _xor(proof, _hmac(verifier.stored_key, auth_message))
    return hmac.compare_digest(_sha256(client_key), verifier.stored_key)


def verify_token_proof(verifier: TokenVerifier, auth_message: bytes, proof: bytes) -> bool:
    """Server side for tokens.  Constant time."""
    client_key, _ = _keys(verifier.key)
    return hmac.compare_digest(_hmac(client_key, auth_message), proof)


def server_signature(server_key: bytes, auth_message: bytes) -> bytes:
    """ServerSignature: proves to the client that the server holds its verifier."""
    return _hmac(server_key, auth_message)


def signatures_match(expected: bytes, received: bytes) -> bool:
    """Constant-time comparison for the client's check of ServerSignature."""
    return hmac.compare_digest(expected, received)


# --- the server's side -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScramExchange:
    """A ``scram-scrypt`` exchange between step 1 and step 2 (server side)."""

    user: str
    verifier: Verifier
    known: bool  # False: a decoy for an unknown user
    auth_message: bytes


class Authenticator:
    """The server's credentials: users' verifiers and the secret for decoys.

    Pure: it holds data and computes; the server builds one from its
    configuration and passes it to each `ServerConnection`.  *secret* keys
    the decoy salts of unknown users; pass a persistent one (e.g. from the
    data directory) so that decoys do not change when the server restarts,
    which would tell a prober which users exist.
    """

    def __init__(
        self,
        passwords: Mapping[str, Verifier] | None = None,
        tokens: Mapping[str, TokenVerifier] | None = None,
        *,
        secret: bytes | None = None,
        decoy_params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
    ) -> None:
        self._passwords = dict(passwords or {})
        self._tokens = dict(tokens or {})
        for user in (*self._passwords, *self._tokens):
            check_user_name(user)
        self._secret = os.urandom(32) if secret is None else secret
        #: Parameters of decoys: keep every user on these so that they match.
        self.decoy_params = decoy_params

    #: The methods offered in the greeting, always both: offering only the
    #: configured ones would say what is configured.
    methods: Final = (SCRAM_METHOD, TOKEN_METHOD)

    def _decoy(self, purpose: bytes, user: str, size: int = KEY_SIZE) -> bytes:
        return _hmac(self._secret, purpose + b"\0" + user.encode())[:size]

    def scram_start(
        self, user: str, client_nonce: bytes, *, node: str, challenge: bytes
    ) -> ScramExchange:
        """Step 1: pick the user's verifier (or a decoy) and compute AuthMessage."""
        verifier = self._passwords.get(user)
        known = verifier is not None
        if verifier is None:
            verifier = Verifier(
                self.decoy_params,
                self._decoy(b"decoy salt", user, SALT_SIZE),
                self._decoy(b"decoy stored key", user),
                self._decoy(b"decoy server key", user),
            )
        message = scram_auth_message(
            node=node,
            user=user,
            challenge=challenge,
            client_nonce=client_nonce,
            salt=verifier.salt,
            params=verifier.params,
        )
        return ScramExchange(user, verifier, known, message)

    def scram_finish(self, exchange: ScramExchange, proof: bytes) -> bytes | None:
        """Step 2: ServerSignature if *proof* is right, else None."""
        # A decoy's stored key matches no proof; verify anyway to take the same time.
        valid = verify_scram_proof(exchange.verifier, exchange.auth_message, proof)
        if not (valid and exchange.known):
            return None
        return server_signature(exchange.verifier.server_key, exchange.auth_message)

    def token_check(
        self, user: str, client_nonce: bytes, proof: bytes, *, node: str, challenge: bytes
    ) -> tuple[bytes | None, bool]:
        """``(ServerSignature or None, whether the user has a token)``."""
        verifier = self._tokens.get(user)
        known = verifier is not None
        if verifier is None:
            verifier = TokenVerifier(self._decoy(b"decoy token", user))
        message = token_auth_message(
            node=node, user=user, challenge=challenge, client_nonce=client_nonce
        )
        if not (verify_token_proof(verifier, message, proof) and known):
            return None, known
        return server_signature(_keys(verifier.key)[1], message), known
