"""Django admin for the domain."""
from django.contrib import admin

from . import models


@admin.register(models.Region)
class RegionAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "timezone")
    search_fields = ("code", "name")


@admin.register(models.Isp, models.Plan)
class CodeNameAdmin(admin.ModelAdmin):
    list_display = ("code", "name")
    search_fields = ("code", "name")


@admin.register(models.Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("number", "code", "name")
    search_fields = ("code", "name")
    filter_horizontal = ("plans",)


@admin.register(models.Licence)
class LicenceAdmin(admin.ModelAdmin):
    list_display = ("channel", "region", "isp_mode", "valid_from", "valid_until")
    list_filter = ("region", "isp_mode")
    list_select_related = ("channel", "region")
    filter_horizontal = ("isps",)
    autocomplete_fields = ("channel",)


class SubscriptionInline(admin.TabularInline):
    model = models.Subscription
    extra = 0


@admin.register(models.Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("id", "region", "isp")
    list_filter = ("region",)
    list_select_related = ("region", "isp")
    show_full_result_count = False
    inlines = [SubscriptionInline]


@admin.register(models.Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("profile_id", "plan", "starts_at", "expires_at")
    list_filter = ("plan",)
    raw_id_fields = ("profile",)
    show_full_result_count = False


@admin.register(models.Programme)
class ProgrammeAdmin(admin.ModelAdmin):
    list_display = ("channel", "starts_at", "ends_at", "title", "genre")
    list_filter = ("genre",)
    search_fields = ("title",)
    date_hierarchy = "starts_at"
    show_full_result_count = False
