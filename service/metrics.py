"""senpos's own Prometheus metrics, served at /metrics beside BentoML's, one label set per model."""

from __future__ import annotations

import bentoml

# Each model's metrics carry its endpoint's name: the model "pos" is served at /pos-tag, labelled "pos_tag".
ENDPOINTS = {"sentiment": "sentiment", "pos": "pos_tag"}
BATCH_SIZE = bentoml.metrics.Histogram(
    name="senpos_batch_size", documentation="Items per model call (adaptive batching)", labelnames=["endpoint"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
QUEUE_WAIT = bentoml.metrics.Histogram(
    name="senpos_queue_wait_seconds", documentation="Time the oldest unit of a batch waited for the model",
    labelnames=["endpoint"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))
SHED = bentoml.metrics.Counter(
    name="senpos_shed_requests", documentation="Requests refused with 503 because the queue was full",
    labelnames=["endpoint"])
DROPPED = bentoml.metrics.Counter(
    name="senpos_dropped_units", documentation="Units of work dropped unrun: their request timed out or its "
    "client went away", labelnames=["endpoint"])
MODEL_INFO = bentoml.metrics.Gauge(
    name="senpos_model_info", documentation="The models this worker serves (always 1; the labels say which)",
    labelnames=["model", "name", "version", "sha256", "provider"])
