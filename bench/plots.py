"""The report's PNG plots (matplotlib, headless): throughput bars, latency CDFs, the lag
histogram and the freshness timeline. Each plot is drawn only when its scenario ran."""
from __future__ import annotations

from pathlib import Path

from .results import Results

ENDPOINTS = ("epg", "playback")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def throughput(res: Results, out: Path) -> Path | None:
    peers = [p for p in res.peers("api") if res.row("api", p, "epg_rps")]
    if not peers:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 5))
    width = 0.4
    for i, endpoint in enumerate(ENDPOINTS):
        rows = [res.row("api", p, f"{endpoint}_rps") for p in peers]
        values = [r.value or 0 for r in rows]
        err = [[max(0, (r.value or 0) - (r.low or r.value or 0)) for r in rows],
               [max(0, (r.high or r.value or 0) - (r.value or 0)) for r in rows]]
        xs = [x + (i - 0.5) * width for x in range(len(peers))]
        ax.bar(xs, values, width, yerr=err, capsize=3, label=endpoint)
    for name, metric, style, label in (("wsgi-2k", "floor_2k_rps", ":", "bare WSGI app, 2 KB constant"),
                                       ("prewarm", "django_floor_2k_rps", "--", "Django view, 2 KB constant")):
        v = res.value("api", name, metric)
        if v:
            ax.axhline(v, linestyle=style, color="grey", linewidth=1)
            ax.text(len(peers) - 0.5, v, label, va="bottom", ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(peers)), peers, rotation=20)
    ax.set_ylabel("req/s (log; median of passes, min-max)")
    ax.set_title("Read throughput per peer")
    ax.legend()
    return _save(plt, fig, out / "throughput.png")


def latency_cdfs(res: Results, out: Path) -> Path | None:
    cdfs = res.samples.get("latency_cdf") or {}
    if not cdfs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 5), sharey=True)
    for ax, endpoint in zip(axes, ENDPOINTS):
        for cell, points in sorted(cdfs.items()):
            name, label = cell.rsplit(" ", 1)
            if label != endpoint or not points:
                continue
            ax.plot([ms for _, ms in points], [q for q, _ in points], marker=".", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log)")
        ax.set_title(f"{endpoint}: latency at max throughput")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("percentile")
    return _save(plt, fig, out / "latency-cdf.png")


def lag_histogram(res: Results, out: Path) -> Path | None:
    runs = res.samples.get("lag") or {}
    if not runs:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label, samples in runs.items():
        if samples:
            top = sorted(samples)[int(0.999 * (len(samples) - 1))]
            ax.hist([min(s, top) for s in samples], bins=60, alpha=0.6, label=f"{label} (n={len(samples)})")
    ax.set_xlabel("commit -> entry rewritten, ms (clipped at p99.9)")
    ax.set_ylabel("changes")
    ax.set_title("Prewarm invalidation lag")
    ax.legend()
    return _save(plt, fig, out / "lag-histogram.png")


def freshness_timeline(res: Results, out: Path, timeout: float) -> Path | None:
    timings = res.samples.get("freshness") or {}
    if not timings:
        return None
    plt = _pyplot()
    writers = list(timings)
    peers = list(dict.fromkeys(p for t in timings.values() for p in t))
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(writers) * len(peers) / 2))
    height = 0.8 / len(peers)
    for j, peer in enumerate(peers):
        ys, widths, never = [], [], []
        for i, writer in enumerate(writers):
            s = timings[writer].get(peer)
            ys.append(i + j * height)
            widths.append(timeout if s is None else max(s, 0.001))
            never.append(s is None)
        bars = ax.barh(ys, widths, height, label=peer)
        for bar, n in zip(bars, never):
            if n:
                bar.set_hatch("//")
                bar.set_alpha(0.35)
    ax.set_xscale("log")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(writers))], writers)
    ax.set_xlabel(f"seconds from commit until the peer serves the new value (log; hatched: never within {timeout:g} s)")
    ax.set_title("Freshness after each kind of write")
    ax.legend(fontsize=8, loc="lower right")
    return _save(plt, fig, out / "freshness.png")


def draw_all(res: Results, out: Path, fresh_timeout: float) -> list[Path]:
    drawn = [throughput(res, out), latency_cdfs(res, out), lag_histogram(res, out),
             freshness_timeline(res, out, fresh_timeout)]
    return [p for p in drawn if p is not None]
