"""What can go wrong, as exceptions that say what happened."""

from __future__ import annotations


class SenposError(Exception):
    """Base class of every error this client raises."""


class ValidationError(SenposError):
    """The server refused the request (4xx): `message` is the server's, `detail` its structured details."""

    def __init__(self, status: int, message: str, detail: object = None):
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.detail = status, message, detail


class ServiceUnavailable(SenposError):
    """The server stayed overloaded or unreachable through every retry."""

    def __init__(self, message: str, attempts: int, last_status: int | None = None):
        super().__init__(f"{message} (after {attempts} attempts)")
        self.attempts, self.last_status = attempts, last_status


class Timeout(SenposError):
    """No answer within the client's timeout."""


class ServerError(SenposError):
    """The server answered with an unexpected 5xx or a body this client cannot read."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status
