"""Django admin for warm-up jobs (progress at a glance, chunks inline, read-only: jobs are
made by the API, `warm` and events; a chunk's state is the workers' business) and events."""
from django import forms
from django.contrib import admin
from django.utils.html import format_html

from . import events, jobs, models
from .scope import BadScope, parse


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


class WarmupEventForm(forms.ModelForm):
    class Meta:
        model = models.WarmupEvent
        fields = ("name", "starts_at", "lead_seconds", "scope")

    def clean(self):
        data = super().clean()
        event = models.WarmupEvent(**{k: v for k, v in data.items() if k in self.Meta.fields})
        try:
            if "scope" in data:
                event.scope = parse(data["scope"]).as_dict()
                data["scope"] = event.scope
            if data.get("starts_at") is not None and data.get("lead_seconds") is not None:
                events.check(event)
        except (BadScope, events.BadEvent) as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


@admin.register(models.WarmupEvent)
class WarmupEventAdmin(admin.ModelAdmin):
    """Saving or deleting here moves or removes the event's clocked schedule (ops.events)."""

    form = WarmupEventForm
    list_display = ("name", "starts_at", "warmup_at", "lead_seconds", "scope", "job_ids")
    readonly_fields = ("warmup_at", "job_ids")

    @admin.display(description="warm-up jobs")
    def job_ids(self, event):
        return ", ".join(str(pk) for pk in event.jobs.values_list("id", flat=True)) or "-"

    def save_model(self, request, obj, form, change):
        events.save(obj)

    def delete_model(self, request, obj):
        events.delete(obj)

    def delete_queryset(self, request, queryset):
        for event in queryset:
            events.delete(event)
