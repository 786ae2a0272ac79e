"""Keep a server busy while it is stopped, and say how every request ended (scripts/test-container.sh).

A few connections send /sentiment requests back to back until the server has refused connections for
--quiet-s seconds in a row (it is gone) or --max-s have passed; prints one JSON line: answers by status and
connection errors, and every request as [sent, ended, outcome] (wall-clock seconds), so the caller can check the
requests in flight when it stopped the server. Standard library only: it runs on the host, outside any virtualenv.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter

REVIEW = "A slow start, but the performances are wonderful and the ending is moving. " * 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", default="")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--quiet-s", type=float, default=3.0)
    parser.add_argument("--max-s", type=float, default=90.0)
    args = parser.parse_args()
    body = json.dumps({"texts": [REVIEW] * 48})  # a few hundred ms of work: requests are in flight at the stop
    headers = {"content-type": "application/json"}
    if args.api_key:
        headers["authorization"] = f"Bearer {args.api_key}"
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    state = {"first_error": None, "last_answer": time.monotonic()}
    requests: list[tuple[float, float, str]] = []
    deadline = time.monotonic() + args.max_s

    def record(sent: float, outcome: str) -> None:
        with lock:
            outcomes[outcome] += 1
            requests.append((sent, time.time(), outcome))
            now = time.monotonic()
            if outcome == "error":
                state["first_error"] = state["first_error"] or now
            else:
                state["last_answer"] = now

    def finished() -> bool:
        with lock:
            gone = state["first_error"] is not None and time.monotonic() - state["last_answer"] > args.quiet_s
        return gone or time.monotonic() > deadline

    def connection() -> None:
        while not finished():
            conn = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
            sent = time.time()
            try:
                while not finished():
                    sent = time.time()
                    conn.request("POST", "/sentiment", body, headers)
                    response = conn.getresponse()
                    response.read()
                    record(sent, str(response.status))
                    if (response.getheader("connection") or "").lower() == "close":
                        break
            except (OSError, http.client.HTTPException):
                record(sent, "error")
                time.sleep(0.05)
            finally:
                conn.close()

    threads = [threading.Thread(target=connection) for _ in range(args.connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"outcomes": dict(outcomes), "requests": sorted(requests)}))


if __name__ == "__main__":
    main()
