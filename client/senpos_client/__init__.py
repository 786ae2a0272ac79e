"""Python client for the senpos service: `Client`, `AsyncClient`, typed results, precise errors."""

from senpos_client._core import PosResult, SentimentResult
from senpos_client.client import AsyncClient, Client
from senpos_client.errors import SenposError, ServerError, ServiceUnavailable, Timeout, ValidationError

__all__ = ["AsyncClient", "Client", "PosResult", "SenposError", "SentimentResult", "ServerError",
           "ServiceUnavailable", "Timeout", "ValidationError"]
__version__ = "0.1.0"
