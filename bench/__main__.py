"""`python -m bench pipeline|api ...`: run a scenario, print a table, write a report."""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("pipeline", help="invalidation lag, burst, fan-out, bytes per profile")
    p.add_argument("--profiles", type=int, default=1_000_000)
    p.add_argument("--rate", type=int, default=200, help="changes per second for the lag runs")
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--burst", type=int, default=100_000, help="subscriptions changed by one UPDATE")
    args = parser.parse_args(argv)
    if args.scenario == "pipeline":
        from . import pipeline

        pipeline.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
