"""Warm-up jobs: a scope cut into chunks that the `warmup` queue's workers run.

Postgres holds the whole state (a job's progress, each chunk's), so a job survives a
worker killed mid-chunk, a broker that lost its messages, or a restart of anything: beat's
`warmup_resume` sends again what no live worker holds (ops.jobs).
"""
from datetime import timedelta

from django.db import models
from django.db.models import Q


class JobState(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # every chunk ran; some failed for good
    CANCELLED = "cancelled"


ACTIVE = (JobState.QUEUED, JobState.RUNNING)


class WarmupEvent(models.Model):
    """A big moment (a cup final): its scope is warmed `lead_seconds` before `starts_at` by
    a django-celery-beat clocked schedule (ops.events keeps it in step)."""

    name = models.CharField(max_length=200)
    starts_at = models.DateTimeField()
    lead_seconds = models.PositiveIntegerField(default=1800, help_text="warm up this long before it starts")
    scope = models.JSONField(help_text='{"all": true}, or any of regions, profiles, epg_dates')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["starts_at", "id"]
        verbose_name = "warm-up event"

    def __str__(self):
        return f"{self.name} at {self.starts_at:%Y-%m-%d %H:%M %Z}"

    @property
    def warmup_at(self):
        return self.starts_at - timedelta(seconds=self.lead_seconds)


class WarmupJob(models.Model):
    scope = models.JSONField(help_text='{"all": true}, or any of regions, profiles, epg_dates')
    # The scope in canonical form: at most one active job per scope (submitting it again
    # returns the running job).
    scope_key = models.CharField(max_length=64, editable=False)
    # The scope as ids and days, fixed at submit time (ops.jobs.resolve).
    resolved = models.JSONField(default=dict, editable=False)
    state = models.CharField(max_length=16, choices=JobState.choices, default=JobState.QUEUED)
    total = models.BigIntegerField(default=0, help_text="entries to build: profiles, classes' regions, channels' days")
    done = models.BigIntegerField(default=0)
    failed = models.BigIntegerField(default=0)
    written = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0, help_text="entries Redis already held newer (an invalidation won)")
    created_by = models.CharField(max_length=64, blank=True, help_text="api, cli, or event")
    event = models.ForeignKey(WarmupEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "warm-up job"
        constraints = [
            models.UniqueConstraint(
                fields=["scope_key"], condition=Q(state__in=ACTIVE), name="one_active_job_per_scope"
            ),
        ]

    def __str__(self):
        return f"warm-up {self.pk} ({self.state})"


class ChunkKind(models.TextChoices):
    PROFILES = "profiles"  # profile ids in [lo, hi) that the scope selects
    CLASSES = "classes"  # the entitlement classes of the scope's regions
    EPG = "epg"  # the fragments of channels with ids in [lo, hi), for the scope's days


class ChunkState(models.TextChoices):
    PENDING = "pending"  # not sent yet
    SENT = "sent"  # in the broker
    RUNNING = "running"  # a worker holds it until lease_until
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # its job was cancelled


class WarmupChunk(models.Model):
    job = models.ForeignKey(WarmupJob, on_delete=models.CASCADE, related_name="chunks")
    kind = models.CharField(max_length=16, choices=ChunkKind.choices)
    lo = models.BigIntegerField(default=0)
    hi = models.BigIntegerField(default=0)
    planned = models.BigIntegerField(default=0, help_text="entries it was expected to build")
    state = models.CharField(max_length=16, choices=ChunkState.choices, default=ChunkState.PENDING)
    attempts = models.IntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    done = models.BigIntegerField(default=0)
    written = models.BigIntegerField(default=0)
    refused = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "warm-up chunk"
        indexes = [
            models.Index(fields=["job", "state"], name="chunk_job_state"),
        ]

    def __str__(self):
        return f"{self.kind} [{self.lo}, {self.hi}) of job {self.job_id}"
