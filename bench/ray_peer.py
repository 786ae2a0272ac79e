"""The peer a user might pick instead, built the way Ray Serve's docs recommend: @serve.batch on the HTTP
deployment's own handler, one replica per core, `max_ongoing_requests` above the batch size (its default of 5
would cap every batch at 5). Same ONNX model and text processing as the service. Runs in its own virtualenv
(`.venv-ray`, made by `make bench`).

    .venv-ray/bin/python -m bench.ray_peer --port 3200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from ray import serve
from starlette.requests import Request

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "models" / "sentiment"
MAX_BATCH = 64


@serve.deployment(num_replicas=os.cpu_count() or 1, max_ongoing_requests=4 * MAX_BATCH,
                  ray_actor_options={"num_cpus": 0})
class Sentiment:
    def __init__(self) -> None:
        from senpos.sentiment import SentimentPredictor

        self.predictor = SentimentPredictor(MODEL, threads=1, max_batch=MAX_BATCH)

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.005)
    async def score(self, texts: list[str]) -> list[float]:
        return self.predictor.predict(texts).tolist()

    async def __call__(self, request: Request) -> list[dict]:
        from senpos.sentiment import sentiment_label

        scores = await asyncio.gather(*(self.score(t) for t in (await request.json())["texts"]))
        return [{"label": sentiment_label(p), "score": p} for p in scores]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3200)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Sentiment.bind(), route_prefix="/sentiment")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
