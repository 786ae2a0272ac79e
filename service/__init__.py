"""The BentoML service: `service.py` defines the HTTP API; the rest of this package supports it."""
