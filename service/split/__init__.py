"""The `split` layout: one model process (`server.py`) runs both models' batching queues, and every API worker
reaches it over one connection (`client.py`), with units and results as numpy arrays (`codecs.py`) in
length-prefixed frames (`wire.py`) over a Unix socket or TCP."""
