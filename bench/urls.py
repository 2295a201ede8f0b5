"""The bench server's URLconf: the product's routes plus the baselines they are compared with."""
from django.urls import path

from config import urls as product

from . import views

baseline_patterns = [
    path("api/bench/floor-2k", views.floor_2k),
    path("api/bench/floor-epg", views.floor_epg),
    path("api/bench/naive-epg", views.naive_epg),
]

urlpatterns = [*baseline_patterns, *product.urlpatterns]

handler400 = product.handler400
handler403 = product.handler403
handler404 = product.handler404
handler500 = product.handler500
