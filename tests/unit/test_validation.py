"""core.validation: one rule per input, and the models, views and ops API all use it."""
from datetime import date

import pytest
from django.core.exceptions import ValidationError

from api.ops import BadScope, parse_scope
from core import validation
from core.models import code_validator


@pytest.mark.parametrize("code", ["EU-WEST", "news", "a", "sport_1.hd", "x" * 32])
def test_codes_that_are_codes(code):
    assert validation.is_code(code)
    code_validator(code)


@pytest.mark.parametrize("code", ["", "-lead", "x" * 33, "sp ace", "news\n", "naïve", "a/b", None, 7])
def test_codes_that_are_not(code):
    assert not validation.is_code(code)
    if isinstance(code, str):
        with pytest.raises(ValidationError):
            code_validator(code)


def test_a_day_parses_to_a_date():
    assert validation.parse_day("2026-02-28") == date(2026, 2, 28)


@pytest.mark.parametrize(
    "raw, message",
    [
        ("2026-2-28", "YYYY-MM-DD"),
        ("2026-02-28\n", "YYYY-MM-DD"),
        ("٢٠٢٦-٠٢-٢٨", "YYYY-MM-DD"),  # Arabic-Indic digits: \d would admit them
        ("2026-02-30", "not a calendar date"),
        (20260228, "YYYY-MM-DD"),
    ],
)
def test_bad_days_say_which_rule_they_broke(raw, message):
    with pytest.raises(validation.BadDay, match=message):
        validation.parse_day(raw)
    assert not validation.is_day(raw)


def test_the_ops_scope_uses_the_same_rules():
    assert parse_scope({"regions": ["EU-WEST"], "epg_dates": ["2026-02-28"]})
    with pytest.raises(BadScope):
        parse_scope({"regions": ["EU-WEST\n"]})
    with pytest.raises(BadScope):
        parse_scope({"epg_dates": ["2026-02-30"]})
