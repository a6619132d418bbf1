"""Settings from the environment and `.env`; the names are the public contract (DESIGN.md)."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from b24sync.errors import InvalidWebhookUrl
from b24sync.redaction import MASK, register_secret

_WEBHOOK_PATH = re.compile(r"^/rest/(?P<user_id>\d+)/(?P<token>[A-Za-z0-9_]+)/?$")


@dataclass(frozen=True)
class WebhookUrl:
    """An inbound-webhook URL ``https://portal/rest/{user_id}/{token}/``.

    ``str()`` and ``repr()`` show it masked; only :attr:`secret_base` carries the token, and
    only the Bitrix24 client's transport should read it.
    """

    scheme: str
    host: str
    user_id: int
    token: str

    @classmethod
    def parse(cls, text: str) -> WebhookUrl:
        parts = urlsplit(text.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidWebhookUrl(
                "BITRIX_WEBHOOK_URL must look like https://your-portal.bitrix24.ru/rest/1/TOKEN/ "
                "(copy it from Developer resources > Inbound webhook)"
            )
        if parts.username or parts.password or parts.query or parts.fragment:
            raise InvalidWebhookUrl(
                "BITRIX_WEBHOOK_URL must not carry credentials, a query or a fragment"
            )
        match = _WEBHOOK_PATH.match(parts.path)
        if match is None:
            raise InvalidWebhookUrl(
                "BITRIX_WEBHOOK_URL path must be /rest/<user id>/<webhook token>/, "
                f"got {parts.scheme}://{parts.netloc}/... with a different path"
            )
        token = match.group("token")
        register_secret(token)
        return cls(parts.scheme, parts.netloc, int(match.group("user_id")), token)

    @property
    def portal(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def secret_base(self) -> str:
        """The full URL with the token, ending in '/': for the HTTP transport only."""
        return f"{self.portal}/rest/{self.user_id}/{self.token}/"

    @property
    def masked(self) -> str:
        return f"{self.portal}/rest/{self.user_id}/{MASK}/"

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"WebhookUrl({self.masked!r})"


class Settings(BaseSettings):
    """All configuration. Secrets are SecretStr or WebhookUrl and never print in clear."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", env_ignore_empty=True, populate_by_name=True
    )

    database_url: str | None = None
    b24sync_data_dir: Path = Path("data")
    b24sync_db_port: int = Field(default=55432, ge=0, le=65535)  # embedded server's TCP; 0: off
    # What the dashboard shows analysts; unset: the embedded server's TCP address, if any.
    bi_database_url: SecretStr | None = None
    demo_portal: bool = False  # set by `b24sync run` for its local demo portal, not by users
    bitrix_webhook_url: str | None = None
    bitrix_application_token: SecretStr | None = None
    # The second names are the original service's (.env example and settings table).
    supabase_jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("supabase_jwt_secret", "jwt_secret")
    )
    supabase_url: str | None = Field(
        default=None, validation_alias=AliasChoices("supabase_url", "public_supabase_url")
    )
    supabase_anon_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("supabase_anon_key", "supabase_key")
    )
    api_keys: SecretStr | None = None
    sync_batch_size: int = 50
    sync_default_interval_minutes: int = 30
    sync_reconcile_hours: int = 24
    events_budget_share: float = 0.5
    debug: bool = False
    bitrix_webhook_secret: SecretStr | None = None
    bitrix_rate: float = 2.0
    bitrix_burst: int = 50
    metrics_public: bool = True
    bitrix_portal_url: str | None = None
    bitrix_client_id: str | None = None
    bitrix_client_secret: SecretStr | None = None
    bitrix_refresh_token: SecretStr | None = None
    bitrix_oauth_url: str = "https://oauth.bitrix.info"

    @field_validator("bitrix_webhook_url")
    @classmethod
    def _validate_webhook_url(cls, value: str | None) -> str | None:
        if value:
            try:
                WebhookUrl.parse(value)
            except InvalidWebhookUrl as exc:
                raise ValueError(str(exc)) from None
        return value or None

    @field_validator("bitrix_portal_url", "bitrix_oauth_url")
    @classmethod
    def _validate_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be a base URL like https://your-portal.bitrix24.ru")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("must not carry credentials, a query or a fragment")
        if parts.path.strip("/"):
            raise ValueError("must be the site address only, with no path")
        return f"{parts.scheme}://{parts.netloc}"

    @model_validator(mode="after")
    def _validate_application(self) -> Settings:
        credentials = [self.bitrix_client_id, self.bitrix_client_secret]
        if any(credentials) and not (all(credentials) and self.bitrix_portal_url):
            raise ValueError(
                "a local application needs BITRIX_PORTAL_URL, BITRIX_CLIENT_ID and "
                "BITRIX_CLIENT_SECRET together (Developer resources > Other > Local application)"
            )
        return self

    @property
    def application_configured(self) -> bool:
        """OAuth (local application) credentials are set: they take precedence over a webhook."""
        return self.bitrix_client_id is not None

    @property
    def portal_configured(self) -> bool:
        return self.application_configured or self.webhook is not None

    @field_validator("events_budget_share")
    @classmethod
    def _validate_share(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError("EVENTS_BUDGET_SHARE is a share of BITRIX_RATE: above 0, at most 1")
        return value

    @field_validator("sync_batch_size")
    @classmethod
    def _validate_batch_size(cls, value: int) -> int:
        if not 1 <= value <= 50:
            raise ValueError("SYNC_BATCH_SIZE is the number of commands per batch call: 1..50")
        return value

    @cached_property
    def webhook(self) -> WebhookUrl | None:
        return WebhookUrl.parse(self.bitrix_webhook_url) if self.bitrix_webhook_url else None

    @property
    def api_key_list(self) -> list[str]:
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]

    def register_secrets(self) -> None:
        """Teach the redaction filter every configured secret."""
        for key in self.api_key_list:
            register_secret(key)
        for secret in (
            self.bitrix_application_token,
            self.supabase_jwt_secret,
            self.supabase_anon_key,
            self.bitrix_webhook_secret,
            self.bitrix_client_secret,
            self.bitrix_refresh_token,
        ):
            if secret is not None:
                register_secret(secret.get_secret_value())

    def __repr_args__(self):  # type: ignore[no-untyped-def]
        for name, value in super().__repr_args__():
            if name == "bitrix_webhook_url" and value:
                yield name, WebhookUrl.parse(value).masked
            else:
                yield name, value


def with_overrides(settings: Settings, **values: object) -> Settings:
    """A copy with some values replaced (validated again, secrets registered)."""
    updated = Settings(**{**settings.model_dump(), **values})
    updated.register_secrets()
    return updated


def stored_secret(data_dir: Path, name: str) -> str:
    """A random secret kept in ``data_dir/name`` (mode 600): made once, reused on every start."""
    path = data_dir / name
    if path.exists():
        value = path.read_text().strip()
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        path.touch(mode=0o600)
        path.write_text(value + "\n")
    register_secret(value)
    return value


DEMO_PORTAL_FILE = "demo_portal.json"


def keep_demo_portal(data_dir: Path, webhook_url: str) -> Path:
    """Note where the demo portal of this `b24sync run` answers (mode 600), for the CLI."""
    path = data_dir / DEMO_PORTAL_FILE
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps({"webhook_url": webhook_url, "pid": os.getpid()}))
    return path


def running_demo_portal(data_dir: Path) -> str | None:
    """The webhook URL of the demo portal a running `b24sync run` serves; a note left behind
    by one that was killed is ignored."""
    try:
        kept = json.loads((data_dir / DEMO_PORTAL_FILE).read_text())
        os.kill(int(kept["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no note, a damaged one, or its process is gone
    return str(kept["webhook_url"])


def load_settings(*, read_demo_portal: bool = True) -> Settings:
    """Settings from the environment and ``.env``; with no portal configured and
    ``read_demo_portal``, the demo portal of a running `b24sync run`."""
    settings = Settings()
    demo = running_demo_portal(settings.b24sync_data_dir) if read_demo_portal else None
    if demo and not settings.portal_configured:
        settings = Settings(bitrix_webhook_url=demo)
    settings.register_secrets()
    return settings
