"""The deployment files agree with the code: no engine runs here, so drift is caught by reading.

`docker compose config` (docker-compose 1.29) validated the compose file by hand; these tests keep
its commands, variables and the image's entry point in step with the CLI and the settings.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from b24sync.cli import app
from b24sync.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def env_names(path: Path) -> set[str]:
    return {
        line.split("=", 1)[0]
        for line in path.read_text().splitlines()
        if re.match(r"^[A-Z_]+=", line)
    }


COMPOSE_ONLY = {"POSTGRES_PASSWORD"}  # read by docker-compose.yml, not by the service


def test_env_example_names_only_real_settings() -> None:
    known = {name.upper() for name in Settings.model_fields}
    assert env_names(ROOT / ".env.example") <= known | COMPOSE_ONLY


def test_compose_runs_postgres_the_service_and_a_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    # the original service's names: `docker-compose logs backend`, `exec db pg_isready`
    assert set(services) == {"db", "backend", "worker"}
    assert services["worker"]["command"] == ["b24sync", "worker"]
    for name in ("backend", "worker"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert services[name]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["backend"]["build"] == "."
    assert services["backend"]["ports"] == ["${B24SYNC_PORT:-8080}:8080"]


def test_the_images_command_is_a_real_cli_invocation() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    command = re.search(r"^CMD \[(.*)\]$", dockerfile, re.MULTILINE)
    assert command is not None
    args = [part.strip().strip('"') for part in command.group(1).split(",")]
    assert args[:2] == ["b24sync", "serve"]
    # --help parses the same options: an unknown one would fail here
    result = CliRunner().invoke(app, [*args[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--host" in result.output and "--port" in result.output
