"""POST /api/bench/write: one write to the programme guide, made in the serving process.

The freshness scenario asks each peer's own server to write, so that the peer's ORM hooks
(cacheops' and cachalot's patches, the django-redis peer's receivers, the product's
signals) run as they would in that team's application. Bench-only: the servers listen on
loopback and this route exists nowhere in the product. Answers after the commit.
"""
from __future__ import annotations

from datetime import datetime

import orjson
from django.db import connection, transaction
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from api.errors import error
from api.http import JSON
from core.models import Programme

WRITERS = ("orm_save", "queryset_update", "raw_sql_django", "bulk_create")
RAW_UPDATE = "UPDATE core_programme SET title = %s WHERE id = %s"
# A new programme's other fields, as the demo data fills them.
DEFAULT_SYNOPSIS = "Added by the freshness benchmark."
DEFAULT_GENRE = "news"
DEFAULT_AGE_RATING = "0+"


class BadWrite(Exception):
    """The request does not describe a write this route makes."""


def _update(writer: str, programme_id: int, title: str) -> int:
    """Rows changed (0: no such programme)."""
    if writer == "orm_save":
        programme = Programme.objects.filter(pk=programme_id).first()
        if programme is None:
            return 0
        programme.title = title
        programme.save()
        return 1
    if writer == "queryset_update":
        return Programme.objects.filter(pk=programme_id).update(title=title)
    with connection.cursor() as cursor:  # raw_sql_django
        cursor.execute(RAW_UPDATE, [title, programme_id])
        return cursor.rowcount


def _insert(doc: dict) -> int:
    (programme,) = Programme.objects.bulk_create([
        Programme(
            channel_id=int(doc["channel"]),
            starts_at=datetime.fromisoformat(doc["starts_at"]),
            ends_at=datetime.fromisoformat(doc["ends_at"]),
            title=str(doc["title"]),
            synopsis=str(doc.get("synopsis", DEFAULT_SYNOPSIS)),
            genre=str(doc.get("genre", DEFAULT_GENRE)),
            age_rating=str(doc.get("age_rating", DEFAULT_AGE_RATING)),
        )
    ])
    return programme.pk


def perform(doc: dict) -> dict:
    """Make the write `doc` describes in one transaction; what changed, after the commit."""
    writer = doc.get("writer")
    if writer not in WRITERS:
        raise BadWrite(f"writer must be one of {', '.join(WRITERS)}")
    try:
        with transaction.atomic():
            if writer == "bulk_create":
                programme_id = _insert(doc)
            else:
                programme_id = int(doc["programme"])
                if not _update(writer, programme_id, str(doc["title"])):
                    raise BadWrite(f"no programme {programme_id}")
    except (KeyError, TypeError, ValueError) as exc:
        raise BadWrite(f"bad {writer} write: {exc!r}") from None
    # "id" repeats "programme": the row written (the new row's id for bulk_create).
    return {"writer": writer, "programme": programme_id, "id": programme_id, "title": str(doc["title"])}


@csrf_exempt
def write(request):
    if request.method != "POST":
        return error(405, "method_not_allowed", "use POST", Allow="POST")
    try:
        doc = orjson.loads(request.body)
        if not isinstance(doc, dict):
            raise BadWrite("the body is a JSON object")
        done = perform(doc)
    except orjson.JSONDecodeError as exc:
        return error(400, "bad_json", str(exc))
    except BadWrite as exc:
        return error(400, "bad_write", str(exc))
    return HttpResponse(orjson.dumps(done), content_type=JSON)
