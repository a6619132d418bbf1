"""Every exception b24sync raises on purpose, by family.

Messages say what happened and what to do; none of them ever contains a webhook token
(build them with :func:`b24sync.redaction.redact` when they quote a URL).
"""

from __future__ import annotations


class B24SyncError(Exception):
    """Base class of all b24sync errors."""


class ConfigurationError(B24SyncError):
    """A setting is missing or malformed."""


class UsageError(B24SyncError):
    """A command was called with arguments that do not go together."""


class PortalMismatch(ConfigurationError):
    """The database already mirrors another portal."""


class InvalidWebhookUrl(ConfigurationError):
    """BITRIX_WEBHOOK_URL is not an inbound-webhook URL."""


class StoreError(B24SyncError):
    """PostgreSQL could not be reached or prepared."""


class TokenRefreshBusy(StoreError):
    """Another process held the token-renewal lock for too long."""


class DatabaseUnavailable(StoreError):
    """PostgreSQL went away during a run and did not come back in time to record its end."""


class EmbeddedPostgresError(StoreError):
    """The embedded PostgreSQL server could not be started."""


class UnsafeIdentifier(B24SyncError):
    """A name cannot become a PostgreSQL identifier."""


class SyncAlreadyRunning(B24SyncError):
    """Another process holds the sync lock for this entity."""


class UnknownEntity(B24SyncError):
    """The entity name is not one b24sync mirrors."""


class UnknownRun(B24SyncError):
    """No run with that id in the run log."""


# --- Bitrix24 REST errors -------------------------------------------------------------------


class StreamGone(B24SyncError):
    """A smart process the portal no longer has: its table is kept, there is nothing to sync."""


class BitrixError(B24SyncError):
    """A Bitrix24 REST call failed.

    ``code`` is the portal's ``error`` field (``QUERY_LIMIT_EXCEEDED``...), ``status`` the HTTP
    status, ``method`` the REST method that failed.
    """

    def __init__(self, message: str, *, code: str = "", status: int = 0, method: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.method = method


class PortalAuthError(BitrixError):
    """The portal refused the credentials (wrong or deleted webhook, missing scope)."""


class OAuthRefused(PortalAuthError):
    """The OAuth server would not exchange the refresh token for a new pair."""


class MethodNotFound(BitrixError):
    """The portal does not know the method (or the webhook lacks the scope)."""


class RecordNotFound(BitrixError):
    """The record does not exist."""


class BadRequest(BitrixError):
    """The portal rejected the parameters."""


class RateLimited(BitrixError):
    """QUERY_LIMIT_EXCEEDED: the leaky bucket overflowed, and retries did not help."""


class OperationTimeLimit(BitrixError):
    """OPERATION_TIME_LIMIT: the method's operating-time budget is spent until a reset time."""


class PortalServerError(BitrixError):
    """5xx, a dropped connection or a timeout that outlived the retries."""


class MalformedAnswer(PortalServerError):
    """The portal answered with data that cannot be right (a list record without its ID)."""


# --- the service ------------------------------------------------------------------------------


class MalformedEvent(B24SyncError):
    """An event POST does not carry what a Bitrix24 CRM event carries."""


class EventTooLarge(MalformedEvent):
    """An event POST is larger than any Bitrix24 event."""


class MalformedInstall(MalformedEvent):
    """An installation POST without the tokens a portal sends on installation."""


class ForbiddenEvent(B24SyncError):
    """An event's application token is missing or does not match BITRIX_APPLICATION_TOKEN."""


class TransientSyncFailure(B24SyncError):
    """A sync failed for a reason that may pass (portal 5xx, limits, network): retry later."""


class EventsUnavailable(B24SyncError):
    """The portal cannot bind events under the configured kind of authorization."""


class InstallRefused(B24SyncError):
    """An application installation whose tokens could not be confirmed with the portal."""


class TooManyInstallAttempts(B24SyncError):
    """The public installation route was called more often than an installation needs."""


class UnsafeHandlerUrl(B24SyncError):
    """A handler_base_url the portal should not be told to call."""
