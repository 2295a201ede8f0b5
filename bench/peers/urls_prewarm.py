"""URLconf of the prewarm peers: the bench server's (product routes and baselines) plus the write."""
from django.urls import path

from bench import urls as bench_urls

from . import write

peer_patterns = [path("api/bench/write", write.write)]
urlpatterns = [*peer_patterns, *bench_urls.urlpatterns]

handler400 = bench_urls.handler400
handler403 = bench_urls.handler403
handler404 = bench_urls.handler404
handler500 = bench_urls.handler500
