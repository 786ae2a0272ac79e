"""Python client for the senpos service: `Client`, `AsyncClient`, typed results, precise errors."""

from senpos_client._core import VERSION, Label, ModelInfo, PosResult, SentimentResult, ServiceInfo
from senpos_client.client import AsyncClient, Client
from senpos_client.errors import (
    AuthenticationError,
    NotFoundError,
    SenposError,
    ServerError,
    ServiceUnavailable,
    Timeout,
    ValidationError,
)

__all__ = ["AsyncClient", "AuthenticationError", "Client", "Label", "ModelInfo", "NotFoundError", "PosResult",
           "SenposError", "SentimentResult", "ServerError", "ServiceInfo", "ServiceUnavailable", "Timeout",
           "ValidationError"]
__version__ = VERSION
