"""What can go wrong, as exceptions that say what happened and carry the server's request id."""

from __future__ import annotations


class SenposError(Exception):
    """Base class of every error this client raises.

    `message` says what happened, `status` is the HTTP status when the server answered, and `request_id` is the
    id the server gave the request (its `x-request-id`), to find it in the server's logs.
    """

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None):
        self.message, self.status, self.request_id = message, status, request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status}: {self.message}" if self.status else self.message
        return f"{text} (request id {self.request_id})" if self.request_id else text


class ValidationError(SenposError):
    """The server refused the request's input (400, 413, 415, 422 or another 4xx not covered below): `message`
    is the server's, `detail` its structured details when it gave them.

    Raised before anything is sent (`status` and `request_id` None) for an item over the characters one request
    may hold, which no split can help: `detail` is then {"index", "chars", "limit", "endpoint"}."""

    def __init__(self, status: int | None, message: str, detail: object = None, *, request_id: str | None = None):
        self.detail = detail
        super().__init__(message, status=status, request_id=request_id)


class AuthenticationError(SenposError):
    """The server wants an API key (401) or refused the one given (403).

    `message` is what happened followed by `hint`, what to do about it (set SENPOS_API_KEY or pass `api_key=`);
    `reason` is what happened alone, for a caller that offers the key its own way (the `senpos` command)."""

    def __init__(self, message: str, *, status: int | None = None, request_id: str | None = None,
                 hint: str | None = None):
        self.reason, self.hint = message, hint
        super().__init__(f"{message}; {hint}" if hint else message, status=status, request_id=request_id)


class NotFoundError(SenposError):
    """The URL answered 404 or 405: it does not point at a senpos server (or has a wrong path in it)."""


class ServiceUnavailable(SenposError):
    """The server stayed overloaded (503/429) or unreachable through every retry."""

    def __init__(self, message: str, attempts: int, last_status: int | None = None, *,
                 request_id: str | None = None):
        self.attempts, self.last_status = attempts, last_status
        super().__init__(f"{message} (after {attempts} attempt{'s' if attempts != 1 else ''})", request_id=request_id)


class Timeout(SenposError):
    """No answer within the client's timeout."""


class ServerError(SenposError):
    """The server answered with an unexpected 5xx or a body this client cannot read."""

    def __init__(self, status: int, message: str, *, request_id: str | None = None):
        super().__init__(message, status=status or None, request_id=request_id)
