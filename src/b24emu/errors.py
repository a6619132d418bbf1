"""REST errors exactly as the portal returns them (docs: _includes/system-errors.md)."""

from __future__ import annotations


class RestError(Exception):
    """An error envelope ``{"error": code, "error_description": text}`` with an HTTP status."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.status = status

    def envelope(self) -> dict[str, str]:
        return {"error": self.code, "error_description": self.description}


def method_not_found() -> RestError:
    return RestError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)


def invalid_credentials() -> RestError:
    return RestError("INVALID_CREDENTIALS", "Invalid request credentials", 401)


def no_auth_found() -> RestError:
    return RestError("NO_AUTH_FOUND", "Wrong authorization data", 401)


def expired_token() -> RestError:
    return RestError("expired_token", "The access token provided has expired.", 401)


def query_limit_exceeded() -> RestError:
    return RestError("QUERY_LIMIT_EXCEEDED", "Too many requests", 503)


def operation_time_limit() -> RestError:
    return RestError("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit", 429)


def internal_server_error() -> RestError:
    return RestError("INTERNAL_SERVER_ERROR", "Internal server error", 500)


def not_found() -> RestError:
    # crm.*.get/update/delete: error code is empty, HTTP 400 (api-reference/crm/deals/crm-deal-get.md)
    return RestError("", "Not found", 400)


def invalid_id() -> RestError:
    return RestError("", "ID is not defined or invalid.", 400)


def bad_parameter(text: str) -> RestError:
    return RestError("", text, 400)


def batch_length_exceeded() -> RestError:
    return RestError("ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded", 400)


def batch_method_not_allowed() -> RestError:
    return RestError("ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage", 405)


def wrong_auth_type() -> RestError:
    # event.bind works only under application authorization (api-reference/events/event-bind.md);
    # the portal answers inbound-webhook calls with this code.
    return RestError("WRONG_AUTH_TYPE", "Current authorization type is denied for this method", 403)


def event_not_found() -> RestError:
    return RestError("ERROR_EVENT_NOT_FOUND", "Event not found", 400)
