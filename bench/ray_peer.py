"""The peer a user might pick instead: Ray Serve with @serve.batch, the same ONNX model and the same text
processing, laid out like the service (an ingress deployment that tokenises, two replicas, calling one
model deployment that batches). Runs in its own virtualenv (`.venv-ray`, made by `make bench`).

    .venv-ray/bin/python -m bench.ray_peer --port 3200
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import numpy as np
from ray import serve
from starlette.requests import Request

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "sentiment"


@serve.deployment(num_replicas=1, ray_actor_options={"num_cpus": 0})
class Model:
    def __init__(self) -> None:
        from senpos.sentiment import SentimentPredictor

        self.predictor = SentimentPredictor(MODEL, max_batch=64)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.005)
    async def score(self, seqs: list[list[int]]) -> list[float]:
        return self.predictor.predict_ids([np.asarray(s, dtype=np.int64) for s in seqs]).tolist()


@serve.deployment(num_replicas=2, ray_actor_options={"num_cpus": 0})
class Ingress:
    def __init__(self, model) -> None:
        from senpos.sentiment import SentimentPredictor

        self.encoder = SentimentPredictor(MODEL, threads=1)
        self.model = model

    async def __call__(self, request: Request) -> list[dict]:
        texts = (await request.json())["texts"]
        seqs = await asyncio.to_thread(self.encoder.encode_many, texts)
        scores = await asyncio.gather(*(self.model.score.remote(s.tolist()) for s in seqs))
        return [{"label": "positive" if p >= 0.5 else "negative", "score": p} for p in scores]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3200)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Ingress.bind(Model.bind()), route_prefix="/sentiment")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
