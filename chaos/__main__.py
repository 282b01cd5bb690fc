"""`python -m chaos [--seconds N] [--seed S]`: one chaos run; exit 1 on any loss or duplicate."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from chaos.run import run
from kafka_local.broker import REPO


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=600.0, help="how long to inject faults")
    parser.add_argument("--seed", type=int, default=1, help="the fault schedule's seed")
    parser.add_argument("--rate", type=float, default=10.0, help="orders posted per second")
    parser.add_argument(
        "--instances", type=int, default=1, help="query instances (each with its own proxies)"
    )
    parser.add_argument("--replicas", type=int, default=1, help="QUERY_REPLICAS of each")
    parser.add_argument("--workdir", type=Path, default=None, help="logs, data, report.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    workdir = args.workdir or REPO / ".cache" / "chaos" / time.strftime("run-%Y%m%d-%H%M%S")
    report = run(
        args.seconds, args.seed, workdir.resolve(), args.rate, args.instances, args.replicas
    )
    (workdir / "report.json").write_text(json.dumps(report.__dict__, indent=2, default=str))
    for line in report.lines():
        print(line)
    print(f"report: {workdir / 'report.json'}; logs in {workdir}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
