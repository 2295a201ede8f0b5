"""prewarm: the product as the bench server runs it (bench.settings), plus the write route."""
from bench.settings import *  # noqa: F403
from bench.settings import MIDDLEWARE as _BENCH_MIDDLEWARE

ROOT_URLCONF = "bench.peers.urls_prewarm"
MIDDLEWARE = ["bench.peers.middleware.PeerFastPath" if m == "bench.middleware.BenchFastPath" else m
              for m in _BENCH_MIDDLEWARE]
BENCH_PEER_PRODUCT = True
