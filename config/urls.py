"""Root URL configuration."""
from django.contrib import admin
from django.urls import include, path

from ops.views import freshness_page

urlpatterns = [
    path("", include("api.urls")),
    path("admin/freshness/", freshness_page, name="ops-freshness"),
    path("admin/", admin.site.urls),
]

handler400 = "api.errors.bad_request"
handler403 = "api.errors.permission_denied"
handler404 = "api.errors.not_found"
handler500 = "api.errors.server_error"
