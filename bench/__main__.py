"""`python -m bench run|pipeline|api|verify|warmup ...`: run a scenario, print a table, write a report."""
import argparse
import sys

from .peers import PEERS
from .scenarios import SCENARIOS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pipeline", help="invalidation lag, burst, fan-out, bytes per profile")
    p.add_argument("--profiles", type=int, default=1_000_000)
    p.add_argument("--rate", type=int, nargs="+", default=[200], help="changes per second for the lag runs")
    p.add_argument("--paths", nargs="+", choices=("relay", "signal"), default=["relay", "signal"])
    p.add_argument("--seconds", type=float, default=15, help="per lag run")
    p.add_argument("--sweep", action="store_true", help="also find the highest rate with p99 <= 100 ms (relay)")
    # Defaults: the Procfile's invalidation workers (`worker`, `worker2`: 2 solo processes).
    p.add_argument("--pool", choices=("prefork", "solo", "threads"), default="solo", help="the workers' pool")
    p.add_argument("--concurrency", type=int, default=1, help="per worker process (1 for solo)")
    p.add_argument("--workers", type=int, default=2, help="worker processes")
    p.add_argument("--sweep-seconds", type=float, default=15, help="per rate of the sweep")
    p.add_argument("--prefetch", type=int, help="the workers' prefetch multiplier (PREWARM_PREFETCH)")
    p.add_argument("--acks", choices=("late", "early"), default="late", help="acknowledge after or before the task")
    p.add_argument("--worker-loglevel", default="INFO", help="the workers' --loglevel (the Procfile's: INFO)")
    p.add_argument("--burst", type=int, default=100_000, help="subscriptions changed by one UPDATE")
    a = sub.add_parser("api", help="API throughput and latency vs a constant-bytes floor and the naive EPG (wrk)")
    a.add_argument("--profiles", type=int, default=100_000)
    a.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    a.add_argument("--connections", type=int, default=32)
    a.add_argument("--tokens", type=int, default=1000, help="viewer tokens the requests rotate over")
    a.add_argument("--no-wait", action="store_true", help="measure even while tests or benchmarks run")
    v = sub.add_parser("verify", help="cache_verify --all over the bench data set (1M profiles in <= 30 s)")
    v.add_argument("--profiles", type=int, default=1_000_000)
    v.add_argument("--runs", type=int, default=2)
    w = sub.add_parser("warmup", help="warm --all through a job vs a COPY + packed HSET floor, with 100 changes/s")
    w.add_argument("--profiles", type=int, default=1_000_000)
    w.add_argument("--no-wait", action="store_true", help="measure even while tests or benchmarks run")
    w.add_argument("--warmup-concurrency", type=int, help="the warmup worker's -c (default: the Procfile's)")
    r = sub.add_parser("run", help="Prewarm against its peers: every scenario side by side, a report with plots")
    r.add_argument("--scenario", nargs="+", choices=SCENARIOS, help="default: all of them")
    r.add_argument("--peers", nargs="+", choices=PEERS, help="default: all of them")
    r.add_argument("--quick", action="store_true", help="100k profiles, short passes (under 10 minutes)")
    r.add_argument("--profile", action="store_true", help="py-spy flamegraphs of a web process and a worker")
    r.add_argument("--profiles", type=int, help="the data set's size (default: 1M, or 100k with --quick)")
    args = parser.parse_args(argv)
    if args.command == "run":
        from . import run

        return run.run(args)
    if args.command == "pipeline":
        from . import pipeline

        pipeline.run(args)
    elif args.command == "warmup":
        from . import warmup

        warmup.run(args)
    elif args.command == "api":
        from . import api

        api.run(args)
    elif args.command == "verify":
        from . import verify

        verify.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
