"""Where the time goes inside the server under load: py-spy samples every API worker while a closed-loop load runs,
and each sample is put in one bucket by what its stack is doing (`bench/usage.py`).

    python -m bench.profile            # writes bench/results/profile-<date>.json and .md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from bench import report
from bench.harness import REPO
from bench.payloads import reviews, sentences
from bench.usage import profile_server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="seconds-long rehearsal on the test fixtures")
    parser.add_argument("--seconds", type=float, default=10.0, help="of py-spy sampling per endpoint")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    seconds = 2.0 if args.smoke else args.seconds
    date = time.strftime("%Y-%m-%d")
    result: dict = {"date": date, "smoke": args.smoke, "command": " ".join(["python -m bench.profile", *sys.argv[1:]]),
                    "runs": {}}
    runs = (("/sentiment (IMDB reviews)", "/sentiment", reviews(2000, smoke=args.smoke)),
            ("/pos-tag (PFR dev sentences)", "/pos-tag", sentences(2000, smoke=args.smoke)))
    for title, path, texts in runs:
        result["runs"][title] = profile_server(path, [{"texts": [t]} for t in texts], seconds)
        print(title, result["runs"][title], flush=True)
    report.write(result, args.out / ("smoke" if args.smoke else ""), f"profile-{date}", report.profile)


if __name__ == "__main__":
    main()
