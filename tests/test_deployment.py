"""The Dockerfile, .dockerignore and fly.toml agree with each other and with the app (no Docker
engine and no Fly account needed): port, DATA_DIR and its volume, health routes, the command,
the user, secrets kept out, settings that exist, files that exist, the graceful stop."""

from __future__ import annotations

import glob
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.dispatcher import DispatchPolicy
from bot.settings import PROJECT_DIR, Settings, load_settings
from bot.web import create_app
from tests import dockerfile
from tests.dockerfile import Stage

SECRET_WORDS = re.compile(r"(?:TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?|_KEYS?)$")
RUNTIME_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "LOG_FORMAT"}


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile.read(PROJECT_DIR / "Dockerfile")


@pytest.fixture(scope="module")
def image(stages: list[Stage]) -> Stage:
    """The final stage: what runs."""
    return stages[-1]


@pytest.fixture(scope="module")
def fly() -> dict[str, Any]:
    with (PROJECT_DIR / "fly.toml").open("rb") as handle:
        return tomllib.load(handle)


def fly_check_paths(fly: dict[str, Any]) -> list[str]:
    service = [check["path"] for check in fly["http_service"].get("checks", [])]
    top = [c["path"] for c in fly.get("checks", {}).values() if c.get("type") == "http"]
    return service + top


def secret_settings() -> set[str]:
    """Settings typed as secrets, and .env.example names that look like one."""
    typed = {
        name.upper()
        for name, info in Settings.model_fields.items()
        if SecretStr in (info.annotation, *getattr(info.annotation, "__args__", ()))
    }
    example = (PROJECT_DIR / ".env.example").read_text()
    named = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    return typed | {name for name in named if SECRET_WORDS.search(name)}


def test_the_parser_reads_continuations_comments_and_both_forms() -> None:
    text = (
        "# syntax=docker/dockerfile:1\n"
        "FROM python:3.11-slim AS build\n"
        "RUN a \\\n"
        "    # a comment inside the continuation\n"
        "\n"
        " && b\n"
        'ENV A=1 B="two words"\n'
        "ENV LEGACY the value\n"
        "FROM python:3.11-slim\n"
        "COPY --from=build --chown=1:1 /opt/venv /opt/venv\n"
        'HEALTHCHECK --interval=5s CMD ["python", "-c", "print(1)"]\n'
        'CMD ["python", "-m", "bot", "serve"]\n'
    )
    build, final = dockerfile.stages(text)
    assert (build.base, build.name, final.name) == ("python:3.11-slim", "build", None)
    assert build.all("RUN")[0].args == "a && b"
    assert build.env() == {"A": "1", "B": "two words", "LEGACY": "the value"}
    copy = final.all("COPY")[0]
    assert copy.flags() == ({"from": "build", "chown": "1:1"}, ["/opt/venv", "/opt/venv"])
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None
    assert dockerfile.healthcheck_command(healthcheck) == ["python", "-c", "print(1)"]
    assert final.all("CMD")[0].exec_form == ["python", "-m", "bot", "serve"]
    with pytest.raises(ValueError, match="continuation"):
        dockerfile.stages("FROM x\nRUN a \\\n")


def test_the_port_agrees_everywhere(image: Stage, fly: dict[str, Any]) -> None:
    port = Settings.model_fields["port"].default
    exposed = {word.split("/")[0] for e in image.all("EXPOSE") for word in e.args.split()}
    healthcheck = image.last("HEALTHCHECK")
    assert healthcheck is not None
    assert exposed == {str(port)}
    assert image.env()["PORT"] == str(port)
    assert image.env()["HOST"] == "0.0.0.0"
    assert fly["env"]["PORT"] == str(port) and fly["env"]["HOST"] == "0.0.0.0"
    assert fly["http_service"]["internal_port"] == port
    assert all(check["port"] == port for check in fly.get("checks", {}).values())
    assert f"'{port}'" in " ".join(dockerfile.healthcheck_command(healthcheck))


def test_data_dir_is_the_volume_and_owned_by_the_user(image: Stage, fly: dict[str, Any]) -> None:
    data_dir = image.env()["DATA_DIR"]
    volume = image.last("VOLUME")
    user = image.last("USER")
    assert volume is not None and user is not None
    assert (volume.exec_form or volume.args.split()) == [data_dir]
    assert fly["env"]["DATA_DIR"] == data_dir == fly["mounts"]["destination"]
    # The volume's folder is made and handed to the user before VOLUME (later changes are lost).
    commands = [
        shlex.split(command)
        for run in image.all("RUN")
        if run.line < volume.line
        for command in run.args.split("&&")
    ]
    accounts = {words[-1]: words for words in commands if words[0] == "useradd"}
    uid = user.args.split(":")[0]
    names = [name for name, words in accounts.items() if uid in (name, *words[1:])]
    assert names, f"USER {user.args}: no useradd of it before VOLUME"
    owners = {
        words[1].split(":")[0]
        for words in commands
        if words[0] == "chown" and words[-1] == data_dir
    }
    assert names[0] in owners, f"{data_dir} is not chowned to {names[0]} before VOLUME"


def test_health_checks_use_real_routes_of_the_app(
    image: Stage, fly: dict[str, Any], tmp_path: Path
) -> None:
    app = create_app(load_settings(_env_file=None, data_dir=tmp_path))  # built, never started
    get_routes = {
        route.resource.canonical
        for route in app.router.routes()
        if route.method in ("GET", "*") and route.resource is not None
    }
    healthcheck = image.last("HEALTHCHECK")
    assert healthcheck is not None
    in_image = re.findall(r"'(/[\w/-]*)'", " ".join(dockerfile.healthcheck_command(healthcheck)))
    paths = fly_check_paths(fly) + in_image
    assert in_image and len(paths) >= 3
    for path in paths:
        assert path in get_routes, f"{path} is not a GET route of bot.web.create_app"
    assert all(c.get("method", "GET").upper() == "GET" for c in fly["http_service"]["checks"])


def test_the_image_runs_serve_as_a_non_root_user(image: Stage, fly: dict[str, Any]) -> None:
    cmd = image.last("CMD")
    user = image.last("USER")
    assert cmd is not None and user is not None
    assert cmd.exec_form == ["python", "-m", "bot", "serve"]
    assert image.last("ENTRYPOINT") is None
    assert "processes" not in fly and "experimental" not in fly  # nothing overrides the CMD
    name, _, group = user.args.partition(":")
    assert name not in ("root", "0") and group not in ("root", "0")
    assert user.line < cmd.line


def test_no_secret_has_a_value_in_the_image_or_fly_env(
    stages: list[Stage], fly: dict[str, Any]
) -> None:
    secrets = secret_settings()
    assert {"TELEGRAM_BOT_TOKEN", "OPENAI_API_KEY", "PINECONE_API_KEY"} <= secrets
    baked: dict[str, str] = dict(fly.get("env", {}))
    baked.update(fly.get("build", {}).get("args", {}))
    for stage in stages:
        baked.update(stage.env())
        for arg in stage.all("ARG"):
            baked[arg.args.partition("=")[0]] = arg.args.partition("=")[2]
    leaked = {name for name in baked if name in secrets or SECRET_WORDS.search(name)}
    assert not leaked, f"secrets belong in `fly secrets set`, not in the config: {leaked}"
    # ... and fly.toml tells the operator which secrets to set.
    comments = "\n".join(
        line for line in (PROJECT_DIR / "fly.toml").read_text().splitlines() if "#" in line
    )
    for name in sorted(secrets):
        assert name in comments, f"fly.toml's comments do not list the secret {name}"


def test_configured_settings_are_real_and_valid(image: Stage, fly: dict[str, Any]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    unknown = set(fly["env"]) - fields
    assert not unknown, f"fly.toml [env] sets what is not a setting: {unknown}"
    image_env = image.env()
    assert set(image_env) - fields <= RUNTIME_ENV, set(image_env) - fields - RUNTIME_ENV
    values = {**image_env, **fly["env"]}
    settings = load_settings(
        _env_file=None, **{k.lower(): v for k, v in values.items() if k in fields}
    )
    assert str(settings.data_dir) == image_env["DATA_DIR"]
    assert settings.public_base_url is None or settings.public_base_url.startswith("https://")
    assert image_env["PYTHONUNBUFFERED"] == "1"


def test_copied_files_exist_and_reach_the_build_context(stages: list[Stage]) -> None:
    patterns = dockerfile.dockerignore_patterns((PROJECT_DIR / ".dockerignore").read_text())
    copied = []
    for stage in stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            flags, words = copy.flags()
            if "from" in flags:
                assert flags["from"] in {s.name for s in stages}, copy
                continue
            copied.extend(words[:-1])
    assert {"bot", "docs", "pyproject.toml"} <= set(copied)
    for source in copied:
        matches = glob.glob(source, root_dir=PROJECT_DIR)
        assert matches, f"COPY {source}: no such file in the project"
        for match in matches:
            assert not dockerfile.is_ignored(match, patterns), f"{match} is in .dockerignore"


def test_dockerignore_keeps_state_secrets_and_tooling_out() -> None:
    patterns = dockerfile.dockerignore_patterns((PROJECT_DIR / ".dockerignore").read_text())
    for path in (".venv", ".venv/bin/python", "data", "data/index.sqlite3", ".git/HEAD", ".env"):
        assert dockerfile.is_ignored(path, patterns), path
    assert dockerfile.is_ignored("rag/__pycache__/agent.cpython-311.pyc", patterns)
    assert not dockerfile.is_ignored("docs/faq.md", patterns)


def test_dependencies_install_before_the_code_is_copied(stages: list[Stage]) -> None:
    """Editing the code must not invalidate the slow `pip install` layer."""
    installs = [
        (stage, run) for stage in stages for run in stage.all("RUN") if "pip install" in run.args
    ]
    assert installs
    for stage, run in installs:
        assert "--no-cache-dir" in run.args and "[dev]" not in run.args
        before = [c for c in stage.all("COPY") if c.line < run.line]
        assert all(c.flags()[1][:-1] == ["pyproject.toml"] for c in before), before


def test_a_graceful_stop_fits_in_the_kill_timeout(image: Stage, fly: dict[str, Any]) -> None:
    stop = image.last("STOPSIGNAL")
    assert stop is not None
    assert fly["kill_signal"] == stop.args == "SIGTERM"  # aiohttp's run_app stops on it
    assert fly["kill_timeout"] >= DispatchPolicy().stop_grace + 10
    # One Machine with one volume: no strategy that boots a second one beside it.
    assert fly.get("deploy", {}).get("strategy", "rolling") in ("rolling", "immediate")
    assert fly["build"]["dockerfile"] == "Dockerfile"
