"""The one place that masks secrets: webhook tokens, JWTs, API keys, application tokens,
database passwords."""

from __future__ import annotations

import re
import threading

_WEBHOOK_TOKEN = re.compile(r"(/rest/\d+/)([^/\s?#\"']+)")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_FORM_SECRET = re.compile(
    r"(?i)((?:application_token|access_token|refresh_token|client_secret|auth)[\]\"']?\s*[=:]\s*[\"']?)"
    r"([A-Za-z0-9._~+/-]{6,})"
)
# A database connection string's password: in the URL's user part, or a password= parameter.
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)([^@\s]+)(@)")
_PASSWORD_PARAM = re.compile(r"(?i)(\bpassword\s*=\s*)([^\s&]+)")
MASK = "***"

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a configured secret (API key, token) so that redact() removes it verbatim."""
    if value and len(value) >= 6:
        with _lock:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every secret this process knows of, or can recognise, masked."""
    text = _WEBHOOK_TOKEN.sub(lambda m: m.group(1) + MASK, text)
    text = _JWT.sub(MASK, text)
    text = _BEARER.sub(lambda m: m.group(1) + MASK, text)
    text = _FORM_SECRET.sub(lambda m: m.group(1) + MASK, text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), text)
    text = _PASSWORD_PARAM.sub(lambda m: m.group(1) + MASK, text)
    with _lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
