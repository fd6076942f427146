"""Secrets at rest: the NIK (and raw inputs holding it) and voucher codes,
encrypted with PII_KEY; a keyed hash of a secret finds its duplicates.

PII_KEY is a Fernet key: url-safe base64 of 32 random bytes. Make one with
``ussd-app pii new-key`` (or ``Fernet.generate_key()``). Outside production an
unset key falls back to a fixed development key, with a warning.
"""
from __future__ import annotations

import base64
import hashlib
import logging

from cryptography.fernet import Fernet, InvalidToken

from ussd_app.core.errors import ConfigError

log = logging.getLogger(__name__)
_DEV_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"ussd-app development only").digest())


class Vault:
    def __init__(self, key: str | None):
        if not key:
            log.warning("PII_KEY is unset: personal data is encrypted with a development key "
                        "(never in production)")
            key = _DEV_KEY
        try:
            self.fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError("PII_KEY must be a Fernet key: url-safe base64 of 32 bytes "
                              "(make one with: ussd-app pii new-key)") from None
        raw = key.encode() if isinstance(key, str) else key
        self._digest_key = hashlib.sha256(b"ussd-app digest|" + raw).digest()

    def encrypt(self, text: str) -> str:
        return self.fernet.encrypt(text.encode()).decode()

    def digest(self, text: str) -> str:
        """A keyed digest of ``text`` (BLAKE2b in its keyed mode, a MAC, under a
        key derived from PII_KEY; 128 bits, base64url): the same secret gives the
        same digest, which tells nothing without the key. To know a text again
        without keeping it: a gateway's retry of a hop (the text may hold a NIK),
        a voucher code already in the pool. (BLAKE2b rather than HMAC-SHA256:
        OpenSSL 3 looks its digest up on every call, ~5% of a hop's instructions;
        base64url rather than hex: a digest never reads as a 16-digit NIK.)"""
        mac = hashlib.blake2b(text.encode(), key=self._digest_key, digest_size=16).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def decrypt(self, token: str) -> str:
        try:
            return self.fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError("PII_KEY does not decrypt stored personal data (was the key changed?)") from None


def new_key() -> str:
    return Fernet.generate_key().decode()
