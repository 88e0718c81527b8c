"""API keys of LLM endpoints: which environment variables may hold one, and encryption of stored keys.

Why: an endpoint's key is sent as ``Authorization: Bearer <key>`` to the endpoint's ``base_url``, which a
project lead chooses. If a lead could name any environment variable, SECRET_KEY or a database password would
travel to any address; if stored keys were plaintext, a database dump would give every key away.

- Key variables: only the names the operator allowed (``LLM_KEY_ENV_PREFIX``, ``LLM_KEY_ENV_ALLOWED``), and
  never the app's own secrets (``NEVER_KEY_VARIABLES``), whatever those settings say. Checked in the form and
  again at use (``LLMEndpoint.resolved_api_key``), so rows saved before the rule cannot leak.
- Stored keys: Fernet (AES-128-CBC + HMAC-SHA256, from the ``cryptography`` package) under a key derived from
  ``settings.SECRET_KEY`` with HKDF-SHA256. ``SECRET_KEY_FALLBACKS`` are tried when decrypting, so Django's
  documented key rotation keeps keys readable. A value that does not decrypt (SECRET_KEY changed) is loaded as
  ``UnreadableKey``: it is never sent, the endpoint says "stored key unreadable: re-enter it", and saving the
  row writes the value back unchanged (restoring the old SECRET_KEY makes it readable again).
"""

from __future__ import annotations

import base64
import functools
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

UNREADABLE_MESSAGE = "Stored key unreadable: re-enter it."

# The app's own secrets and the servers it talks to: never an endpoint key, even if a prefix or the exact
# list would allow them (an operator setting LLM_KEY_ENV_PREFIX="" plus LLM_KEY_ENV_ALLOWED=SECRET_KEY, or a
# prefix such as "LLM_" that would match LLM_API_KEY).
NEVER_KEY_VARIABLES = frozenset(
    {
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "DJANGO_SECRET_KEY",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "SESSION_CACHE_URL",
        "REDIS_URL",
        "LLM_API_KEY",
        "LLM_BASE_URL",
        "PGPASSWORD",
        "EMAIL_HOST_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }
)

HKDF_SALT = b"synthstudio llm-endpoint keys"
HKDF_INFO = b"fernet v1"


class KeyUnavailable(Exception):
    """An endpoint's key may not or cannot be used; the message says why (shown to the lead)."""


# -- which environment variables ---------------------------------------------------------------------------


def key_variable_problem(name: str) -> str:
    """'' when the environment variable `name` may hold an endpoint's key, else a sentence saying why not and
    what is allowed (shown to the lead)."""
    prefix = settings.LLM_KEY_ENV_PREFIX
    allowed = name not in NEVER_KEY_VARIABLES and (
        name in settings.LLM_KEY_ENV_ALLOWED
        or bool(prefix and name.startswith(prefix) and len(name) > len(prefix))
    )
    if allowed:
        return ""
    return f"The variable {name} may not hold an endpoint key. {allowed_key_variables()}"


def allowed_key_variables() -> str:
    """The operator's rule, in words."""
    prefix, names = (
        settings.LLM_KEY_ENV_PREFIX,
        [n for n in settings.LLM_KEY_ENV_ALLOWED if n not in NEVER_KEY_VARIABLES],
    )
    parts = []
    if prefix:
        parts.append(f"names starting with {prefix} (e.g. {prefix}OPENAI)")
    if names:
        parts.append("one of " + ", ".join(names))
    if not parts:
        return "The operator allows no key variables here: type the key instead (it is stored encrypted)."
    return "Allowed: " + " or ".join(parts) + "."


# -- encryption at rest ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _fernet_for(secret: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=HKDF_SALT, info=HKDF_INFO).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernet() -> MultiFernet:
    """Encrypts with SECRET_KEY; decrypts with it or any of SECRET_KEY_FALLBACKS."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(secret) for secret in secrets])


def encrypt_key(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def decrypt_key(token: str) -> str:
    """The plaintext; raises cryptography.fernet.InvalidToken when `token` is not ours under any current key."""
    return _fernet().decrypt(token.encode()).decode()


def looks_encrypted(value: str) -> bool:
    """Fernet tokens start with version byte 0x80, which is 'gAAAAA' in urlsafe base64; API keys never do."""
    return value.startswith("gAAAAA")


class UnreadableKey(str):
    """A stored value that does not decrypt under the current SECRET_KEY (or its fallbacks); its text is the
    stored token, kept so that saving the row does not destroy it. Never used as a key."""

    def __repr__(self) -> str:
        return "<UnreadableKey>"


class EncryptedKeyField(models.TextField):
    """A text column holding a Fernet token; Python code sees the plaintext (or an UnreadableKey).

    The empty string stays empty in the database, so "no key stored" remains a plain lookup."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        try:
            return decrypt_key(value)
        except InvalidToken:
            return UnreadableKey(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if not value:
            return value
        if isinstance(value, UnreadableKey):
            return str.__str__(value)
        return encrypt_key(value)
