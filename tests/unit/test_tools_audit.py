"""tools.audit: a known vulnerability fails CI; not reaching the vulnerability service is said
plainly and does not (pip-audit's own exit 0 then means nothing was audited)."""
from tools.audit import judge

DJANGO = {"name": "django", "version": "5.2.1", "vulns": []}
NOT_FOUND = {"name": "kombu", "version": "5.4.2",
             "skip_reason": "Dependency not found on PyPI and could not be audited: kombu (5.4.2)"}


def test_a_known_vulnerability_fails_and_names_the_fix():
    bad = {"name": "django", "version": "5.2.1",
           "vulns": [{"id": "PYSEC-2026-1", "fix_versions": ["5.2.9"], "description": "..."}]}
    verdict = judge({"dependencies": [bad, NOT_FOUND], "fixes": []}, 1, "")
    assert verdict.failed
    assert "django 5.2.1: PYSEC-2026-1 (fixed in 5.2.9)" in verdict.message


def test_a_clean_audit_passes_and_counts_what_it_audited():
    verdict = judge({"dependencies": [DJANGO, NOT_FOUND]}, 0, "")
    assert not verdict.failed
    assert verdict.message == "audit: ok, 1 dependencies audited, no known vulnerabilities; 1 not found on the service"


def test_a_service_that_knows_no_package_is_not_a_clean_audit():
    """What this machine sees: PyPI's JSON API answers 404 for every package, pip-audit skips
    them all and exits 0 saying "No known vulnerabilities found"."""
    verdict = judge({"dependencies": [NOT_FOUND, NOT_FOUND]}, 0, "")
    assert not verdict.failed and verdict.message.startswith("audit: NOT RUN")


def test_an_unreachable_service_is_reported_and_does_not_fail():
    stderr = "Traceback ...\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='api.osv.dev')\n"
    verdict = judge(None, 1, stderr)
    assert not verdict.failed
    assert "NOT RUN" in verdict.message and "api.osv.dev" in verdict.message
