"""Django admin for warm-up jobs: progress at a glance, chunks inline, read-only (jobs are
made by the API, `warm` and scheduled events; a chunk's state is the workers' business)."""
from django.contrib import admin
from django.utils.html import format_html

from . import jobs, models


class ChunkInline(admin.TabularInline):
    model = models.WarmupChunk
    extra = 0
    can_delete = False
    fields = ("kind", "lo", "hi", "state", "planned", "done", "written", "refused", "attempts", "error")
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(models.WarmupJob)
class WarmupJobAdmin(admin.ModelAdmin):
    list_display = ("id", "state", "progress", "done", "total", "failed", "refused", "rate", "created_by", "created_at")
    list_filter = ("state", "created_by")
    readonly_fields = ("scope", "state", "total", "done", "failed", "written", "refused", "created_by", "error",
                       "created_at", "started_at", "finished_at", "progress", "rate")
    exclude = ("resolved",)
    inlines = [ChunkInline]
    actions = ["cancel"]

    def has_add_permission(self, request):
        return False

    @admin.display(description="progress")
    def progress(self, job):
        share = (job.done + job.failed) / job.total if job.total else 1.0
        return format_html('<progress max="100" value="{}" title="{}%"></progress> {}%', round(share * 100),
                           round(share * 100), round(share * 100))

    @admin.display(description="entries/s")
    def rate(self, job):
        return jobs.progress(job)["rate"]

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        cancelled = sum(jobs.cancel(job) for job in queryset)
        self.message_user(request, f"{cancelled} job(s) cancelled")
