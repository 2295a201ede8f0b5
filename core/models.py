"""Domain models: who may watch which channel where, and what is on."""
import zoneinfo

from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now

from . import entitlement
from .validation import CODE_PATTERN, CODE_RULE

# \Z, not $: a code with a trailing newline is not a code.
code_validator = RegexValidator(rf"^{CODE_PATTERN}\Z", f"Use {CODE_RULE}")


class NextVersion(models.Func):
    """The next value of the one sequence that numbers every version (see core.triggers):
    a row's versions grow across deletes and re-inserts, even when triggers are skipped."""

    template = "nextval('prewarm_version_seq')"
    output_field = models.BigIntegerField()


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone") from None


class Region(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, validators=[validate_timezone], default="UTC")
    # Bumped by a trigger whenever anything behind this region's entitlement classes
    # changes (licences, channel packages); cached class entries carry it.
    version = models.BigIntegerField(db_default=NextVersion(), editable=False)

    def __str__(self):
        return self.code


class Isp(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.code


class Plan(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=100)

    def __str__(self):
        return self.code


class Channel(models.Model):
    code = models.CharField(max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(max_length=100)
    number = models.PositiveIntegerField(unique=True)
    # No plan at all means the channel is free to anyone licensed in the region.
    plans = models.ManyToManyField(Plan, blank=True, related_name="channels")
    # Bumped by a trigger on every change to the channel or its programmes (EPG fragments).
    epg_version = models.BigIntegerField(db_default=NextVersion(), editable=False)

    class Meta:
        ordering = ["number"]

    def __str__(self):
        return f"{self.number} {self.code}"


class Licence(models.Model):
    """Rights to show a channel in a region, optionally for some ISPs only and for a time."""

    ISP_ANY, ISP_ALLOW, ISP_DENY = entitlement.ISP_ANY, entitlement.ISP_ALLOW, entitlement.ISP_DENY
    ISP_MODES = list(entitlement.ISP_MODES.items())

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="licences")
    region = models.ForeignKey(Region, on_delete=models.CASCADE, related_name="licences")
    isp_mode = models.CharField(max_length=8, choices=ISP_MODES, default=ISP_ANY)
    isps = models.ManyToManyField(Isp, blank=True, related_name="licences")
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["region", "channel"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(valid_from__isnull=True)
                | models.Q(valid_until__isnull=True)
                | models.Q(valid_until__gt=models.F("valid_from")),
                name="licence_window_ordered",
            )
        ]

    def __str__(self):
        return f"{self.channel.code}@{self.region.code}"


class Profile(models.Model):
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="profiles")
    isp = models.ForeignKey(Isp, on_delete=models.PROTECT, related_name="profiles")
    # Bumped by a trigger on every change to the profile or its subscriptions, so a
    # rebuild that read older rows can never overwrite a newer cache entry.
    version = models.BigIntegerField(db_default=NextVersion(), editable=False)

    def __str__(self):
        return f"profile {self.pk}"


class Subscription(models.Model):
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"]), models.Index(fields=["starts_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=models.F("starts_at")),
                name="subscription_window_ordered",
            )
        ]

    def __str__(self):
        return f"{self.profile_id}:{self.plan.code}"


class Programme(models.Model):
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="programmes")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    title = models.CharField(max_length=200)
    synopsis = models.TextField(blank=True)
    genre = models.CharField(max_length=40, blank=True)
    age_rating = models.CharField(max_length=8, blank=True)

    class Meta:
        ordering = ["channel", "starts_at"]
        indexes = [models.Index(fields=["channel", "starts_at"]), models.Index(fields=["starts_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="programme_window_ordered"
            )
        ]

    def __str__(self):
        return self.title


class OutboxEvent(models.Model):
    """Written by Postgres triggers in the changing transaction; drained by `manage.py relay`."""

    kind = models.CharField(max_length=16)
    ids = ArrayField(models.BigIntegerField())
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "prewarm_outbox"
        ordering = ["id"]

    def __str__(self):
        return f"{self.kind}:{len(self.ids)}"


class DeletedRow(models.Model):
    """Written by the DELETE and TRUNCATE triggers: a deleted row's last version. The rebuild
    that finds the row gone dates its tombstone with it, so the tombstone refuses late writes
    of the old row but not the next row inserted with the same id."""

    kind = models.CharField(max_length=16)
    row_id = models.BigIntegerField()
    version = models.BigIntegerField()
    deleted_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "prewarm_deleted"
        constraints = [models.UniqueConstraint(fields=["kind", "row_id"], name="prewarm_deleted_once")]
        indexes = [models.Index(fields=["deleted_at"], name="prewarm_deleted_at")]

    def __str__(self):
        return f"{self.kind}:{self.row_id}@{self.version}"
