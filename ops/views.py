"""The admin's freshness page: a read-only look at how fresh the cache is, for staff."""
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from . import freshness

REFRESH_SECONDS = 10


@staff_member_required
def freshness_page(request):
    facts = freshness.read()
    context = {
        **admin.site.each_context(request),
        "title": "Cache freshness",
        "facts": facts,
        "hits": [
            {"family": family, "reads": r["reads"],
             **{name: f"{r[name] * 100:.1f}%" for name in ("local", "redis", "miss")}}
            for family, r in facts.hits.items()
        ],
        "lag": [(f"p{p}", _bound_ms(facts.lag.get(f"p{p}"))) for p in freshness.PERCENTILES],
        "lag_chart": mark_safe(facts.lag_chart),  # built from numbers and fixed labels only
        "drift": [{"family": f, "kind": k, "entries": n} for (f, k), n in facts.drift.items()],
        "refresh": REFRESH_SECONDS,
    }
    return TemplateResponse(request, "ops/freshness.html", context)


def _bound_ms(bound: str | None) -> str:
    if bound is None:
        return "no change observed yet"
    if bound == "+Inf":
        return "over 60 s"
    return f"≤ {float(bound) * 1000:g} ms"
