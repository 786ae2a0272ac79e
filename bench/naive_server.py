"""The naive baseline: the tutorial's way to serve the model. One request = one PyTorch forward pass, no
batching, a minimal threaded HTTP server. Same weights and text processing as the service.

    python -m bench.naive_server --port 3100
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from senpos.sentiment import sentiment_label
from senpos.text.english import tokenize, truncate
from senpos.text.vocab import Vocab
from training.sentiment.export import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=3100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, ckpt = load_checkpoint(REPO / "models" / "sentiment-pytorch")
    vocab = Vocab.load(REPO / "models" / "sentiment" / "vocab.json")
    max_tokens, head = ckpt["train_config"]["max_tokens"], ckpt["train_config"]["head_tokens"]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["texts"]
            out = []
            with torch.no_grad():
                for text in texts:  # one forward pass per text, as the tutorial's predict function
                    ids = truncate(vocab.encode(tokenize(text)), max_tokens, head) or [1]
                    p = float(model(torch.tensor([ids]), torch.tensor([len(ids)]))[0])
                    out.append({"label": sentiment_label(p), "score": p})
            body = json.dumps(out).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
