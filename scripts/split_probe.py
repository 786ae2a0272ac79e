"""A closed loop of one-review /sentiment requests that counts how every request ended (scripts/test-split.sh).

`--connections` per `--target` (host:port, repeatable) send requests back to back until `--seconds` have passed
or the file `--until` exists; prints one JSON line: answers by status and connection errors, how many 503s carried
Retry-After, and the slowest answer of each kind. Standard library only: it runs on the host, outside any
virtualenv.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
import time
from collections import Counter

REVIEW = "A slow start, but the performances are wonderful and the ending is moving."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", action="append", required=True, help="host:port")
    parser.add_argument("--connections", type=int, default=4, help="per target")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--until", default="", help="stop once this file exists")
    parser.add_argument("--api-key", default="")
    args = parser.parse_args()
    body = json.dumps({"texts": [REVIEW]})
    headers = {"content-type": "application/json"}
    if args.api_key:
        headers["authorization"] = f"Bearer {args.api_key}"
    outcomes: Counter[str] = Counter()
    slowest: dict[str, float] = {}
    retry_after = 0
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def finished() -> bool:
        return time.monotonic() > deadline or bool(args.until and os.path.exists(args.until))

    def record(outcome: str, took: float, has_retry_after: bool = False) -> None:
        nonlocal retry_after
        with lock:
            outcomes[outcome] += 1
            slowest[outcome] = max(slowest.get(outcome, 0.0), took)
            retry_after += has_retry_after

    def connection(host: str, port: int) -> None:
        while not finished():
            conn = http.client.HTTPConnection(host, port, timeout=30)
            sent = time.monotonic()
            try:
                while not finished():
                    sent = time.monotonic()
                    conn.request("POST", "/sentiment", body, headers)
                    response = conn.getresponse()
                    response.read()
                    record(str(response.status), time.monotonic() - sent, response.getheader("retry-after") is not None)
                    if response.status != 200:
                        time.sleep(0.05)
                    if (response.getheader("connection") or "").lower() == "close":
                        break
            except (OSError, http.client.HTTPException):
                record("error", time.monotonic() - sent)
                time.sleep(0.05)
            finally:
                conn.close()

    threads = []
    for target in args.target:
        host, _, port = target.rpartition(":")
        threads += [threading.Thread(target=connection, args=(host, int(port))) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"outcomes": dict(outcomes), "requests": sum(outcomes.values()), "retry_after": retry_after,
                      "slowest_s": {k: round(v, 3) for k, v in slowest.items()}}))


if __name__ == "__main__":
    main()
