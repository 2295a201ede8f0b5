"""docker-compose.yml describes the production-like topology the spec asks for (§6, §7)."""
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from config.settings import DEV_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROCFILE = ROOT / "Procfile"
DOCKERFILE = ROOT / "Dockerfile"

APP_SERVICES = ("web", "worker", "worker2", "warmup", "beat", "relay")
SHARED_ENV = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "PREWARM_KEY_PREFIX",
              "PREWARM_ALLOWED_HOSTS")
REQUIRED_SECRET = re.compile(r"^\$\{SECRET_KEY:\?[^}]*\}$")
# Every secret compose needs, each required from the environment (no default in the file).
SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "BROKER_PASSWORD")
COMPOSE_ENV = {name: f"compose-test-{name.lower()}" for name in SECRETS}


def required(name: str) -> str:
    """`${NAME:?...}`: Compose refuses to start without NAME, and the file holds no value."""
    return r"\$\{" + name + r":\?[^}]*\}"


@pytest.fixture(scope="module")
def services():
    # safe_load resolves the `<<: *app` merge keys the way Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def command(service) -> str:
    cmd = service["command"]
    return " ".join(cmd) if isinstance(cmd, list) else cmd


def test_topology_has_every_service(services):
    assert {"postgres", "redis", "migrate", *APP_SERVICES} <= set(services)


def test_redis_is_a_bounded_lru_cache(services):
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    args = redis["command"]
    assert args[args.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert re.fullmatch(r"\d+[kmg]b", args[args.index("--maxmemory") + 1])
    assert args[args.index("--save") + 1] == ""
    assert args[args.index("--appendonly") + 1] == "no"


def test_broker_is_not_the_evicting_cache(services):
    broker_url = services["worker"]["environment"]["CELERY_BROKER_URL"]
    host = re.match(r"redis://(?:[^@/]*@)?([^:/]+)", broker_url).group(1)
    assert host != "redis", "allkeys-lru on the cache would evict queued tasks"
    assert "allkeys-lru" not in command(services[host])


def test_postgres_image_and_volume(services):
    postgres = services["postgres"]
    assert re.fullmatch(r"postgres:1[78](\..*)?", postgres["image"])
    assert postgres["volumes"]


def test_app_services_share_one_definition(services):
    first = services[APP_SERVICES[0]]
    for name in APP_SERVICES + ("migrate",):
        svc = services[name]
        assert svc["build"] == first["build"], name
        assert svc["image"] == first["image"], name
        assert svc["environment"] == first["environment"], name
    for key in SHARED_ENV:
        assert first["environment"].get(key), key
    assert first["environment"]["DATABASE_URL"].startswith("postgres://")
    assert first["environment"]["DATABASE_URL"].endswith("@postgres:5432/prewarm")
    assert re.fullmatch(r"redis://:.+@redis:6379/\d+", first["environment"]["REDIS_URL"])


def test_no_password_is_written_in_the_file(services):
    """Issue 13: the database password was `prewarm`, the cache and broker had none."""
    env = services["web"]["environment"]
    assert re.fullmatch(f"postgres://prewarm:{required('POSTGRES_PASSWORD')}@postgres:5432/prewarm",
                        env["DATABASE_URL"])
    assert re.fullmatch(required("POSTGRES_PASSWORD"), services["postgres"]["environment"]["POSTGRES_PASSWORD"])
    for name, url, secret in (("redis", "REDIS_URL", "REDIS_PASSWORD"), ("broker", "CELERY_BROKER_URL",
                                                                         "BROKER_PASSWORD")):
        args = services[name]["command"]
        assert re.fullmatch(required(secret), args[args.index("--requirepass") + 1]), name
        assert re.fullmatch(f"redis://:{required(secret)}@{name}:6379/0", env[url]), name
        # The health check's redis-cli authenticates through REDISCLI_AUTH, not a password on its line.
        assert re.fullmatch(required(secret), services[name]["environment"]["REDISCLI_AUTH"]), name
        assert secret not in " ".join(services[name]["healthcheck"]["test"]), name


def test_allowed_hosts_are_named_never_any(services):
    hosts = services["web"]["environment"]["PREWARM_ALLOWED_HOSTS"]
    assert "*" not in hosts
    assert hosts.split(",")[0] == "127.0.0.1"  # the web health check's own Host
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def procfile() -> dict[str, str]:
    lines = [line for line in PROCFILE.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return {name.strip(): cmd.strip() for name, _, cmd in (line.partition(":") for line in lines)}


def dockerfile_cmd() -> list[str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))


def test_the_web_command_is_written_once():
    """Procfile, image and compose run config/web.py; only it knows granian's command line."""
    web = "python -m config.web"
    assert procfile()["web"] == web
    assert " ".join(dockerfile_cmd()) == web
    assert command(yaml.safe_load(COMPOSE_FILE.read_text())["services"]["web"]) == web
    for path in (PROCFILE, DOCKERFILE, COMPOSE_FILE):
        assert "granian" not in "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")
        ), path.name


def test_the_image_serves_its_collected_static_files_on_all_interfaces():
    text = DOCKERFILE.read_text()
    env = dict(re.findall(r"^\s+(?:ENV )?([A-Z_]+)=(\S+?)\s*\\?$", text, re.M))
    assert env["PREWARM_STATIC_ROOT"] == "/app/static"  # what config.web mounts when it exists
    assert (env["HOST"], env["PORT"]) == ("0.0.0.0", "8000")
    assert text.index("COPY . /app") < text.index("manage.py collectstatic --noinput") < text.index("\nCMD ")


def test_commands(services):
    for name, queue in (("worker", "invalidate"), ("worker2", "invalidate"), ("warmup", "warmup")):
        worker = command(services[name])
        assert worker.startswith("celery -A workers worker")
        assert worker.split("-Q ", 1)[1].split()[0].split(",") == [queue]
    assert command(services["beat"]).startswith("celery -A workers beat")
    assert command(services["relay"]) == "python manage.py relay"
    assert command(services["migrate"]).startswith("python manage.py migrate")
    assert services["migrate"]["restart"] == "no"
    assert "8000:8000" in services["web"]["ports"]


def test_healthchecks(services):
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


def test_start_order(services):
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        deps = services[name]["depends_on"]
        assert deps["postgres"]["condition"] == "service_healthy", name
        assert deps["redis"]["condition"] == "service_healthy", name
        assert deps["migrate"]["condition"] == "service_completed_successfully", name


def test_no_service_runs_with_the_dev_secret(services):
    for name, svc in services.items():
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        assert DEV_SECRET_KEY not in str(svc), name
        for flag in ("PREWARM_DEV", "PREWARM_DEBUG"):
            assert str(env.get(flag, "")).lower() not in {"1", "true", "yes", "on"}, (name, flag)
        if "SECRET_KEY" in env:
            assert REQUIRED_SECRET.match(env["SECRET_KEY"]), f"{name}: SECRET_KEY must be required, no default"


def test_every_procfile_process_has_a_service(services):
    if not PROCFILE.exists():
        pytest.skip("no Procfile in the repository yet")
    names = [
        line.split(":", 1)[0].strip()
        for line in PROCFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert names
    assert set(names) <= set(services)


def test_dockerfile_runs_unprivileged_with_settings():
    text = DOCKERFILE.read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "DJANGO_SETTINGS_MODULE=config.settings" in text
    assert "pip install ." in text
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert DEV_SECRET_KEY not in text


def run_compose_config(env):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose binary not on PATH (Debian package docker-compose)")
    return subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_docker_compose_validates_the_file():
    env = {**{k: v for k, v in os.environ.items() if k not in SECRETS}, **COMPOSE_ENV}
    result = run_compose_config(env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("missing", SECRETS)
def test_docker_compose_refuses_a_missing_secret(missing):
    env = {**{k: v for k, v in os.environ.items() if k not in SECRETS}, **COMPOSE_ENV}
    del env[missing]
    result = run_compose_config(env)
    assert result.returncode != 0
    assert missing in result.stderr
