"""API routes."""
from django.urls import path

from . import views

urlpatterns = [
    path("healthz", views.healthz),
    path("api/v1/me/profile", views.me_profile),
]
