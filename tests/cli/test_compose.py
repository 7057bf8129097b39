"""docker-compose.temporal.yml: a self-hosted Temporal on PostgreSQL with its Web UI, admin tools and our search
attributes."""

from typing import Any

import pytest
import yaml

from cli.stack import SEARCH_ATTRIBUTES
from models.settings import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.temporal.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def env_of(service: dict[str, Any]) -> dict[str, str]:
    """Compose allows both a list of KEY=VALUE and a mapping."""
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def depends_on(service: dict[str, Any]) -> set[str]:
    deps = service.get("depends_on", [])
    return set(deps) if isinstance(deps, list) else set(deps.keys())


def published_container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(port).rsplit(":", 1)[-1].split("/")[0]) for port in service.get("ports", [])}


def image_tag(service: dict[str, Any]) -> str:
    image = str(service["image"])
    assert ":" in image, f"image {image} is not pinned"
    return image.rsplit(":", 1)[1]


def test_services_and_pinned_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    images = {name: str(service["image"]) for name, service in services.items()}
    assert images["postgresql"].startswith("postgres:")
    assert images["temporal"].startswith("temporalio/auto-setup:")
    assert images["temporal-admin-tools"].startswith("temporalio/admin-tools:")
    assert images["temporal-ui"].startswith("temporalio/ui:")
    for name, service in services.items():
        tag = image_tag(service)
        assert tag not in ("latest", "") and "$" not in tag, f"{name} must pin its image version, not {tag!r}"


def test_temporal_server_runs_on_the_postgres_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    temporal, postgres = services["temporal"], services["postgresql"]
    env = env_of(temporal)
    assert env["DB"] in ("postgres12", "postgres12_pgx")
    assert env["POSTGRES_SEEDS"] == "postgresql"
    assert env["DB_PORT"] == "5432"
    pg_env = env_of(postgres)
    assert env["POSTGRES_USER"] == pg_env["POSTGRES_USER"]
    assert env["POSTGRES_PWD"] == pg_env["POSTGRES_PASSWORD"]
    assert 7233 in published_container_ports(temporal)
    assert "postgresql" in depends_on(temporal)
    assert postgres.get("volumes"), "the Temporal database must live on a volume"


def test_dynamic_config_file_is_mounted_and_exists(compose: dict[str, Any]) -> None:
    temporal = compose["services"]["temporal"]
    in_container = env_of(temporal)["DYNAMIC_CONFIG_FILE_PATH"]  # relative to /etc/temporal
    mounts = {}
    for volume in temporal["volumes"]:
        host, container = str(volume).split(":")[:2]
        mounts[container.rstrip("/")] = host
    container_dir, file_name = ("/etc/temporal/" + in_container).rsplit("/", 1)
    assert container_dir in mounts, f"{container_dir} is not mounted into the temporal service"
    host_file = (COMPOSE_FILE.parent / mounts[container_dir] / file_name).resolve()
    assert host_file.is_file(), f"{host_file} is missing"
    config = yaml.safe_load(host_file.read_text())
    assert isinstance(config, dict)
    for key, values in config.items():
        assert isinstance(values, list) and all("value" in item for item in values), key


def test_web_ui_and_admin_tools_point_at_the_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    ui, admin = services["temporal-ui"], services["temporal-admin-tools"]
    assert env_of(ui)["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "TEMPORAL_CORS_ORIGINS" in env_of(ui)
    assert 8080 in published_container_ports(ui)
    assert "temporal" in depends_on(ui)
    admin_env = env_of(admin)
    assert admin_env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert admin_env["TEMPORAL_CLI_ADDRESS"] == "temporal:7233"
    assert admin.get("stdin_open") is True and admin.get("tty") is True
    assert "temporal" in depends_on(admin)


def test_every_service_shares_one_network(compose: dict[str, Any]) -> None:
    networks = set(compose["networks"])
    assert networks
    for name, service in compose["services"].items():
        assert set(service["networks"]) <= networks, name


def test_search_attributes_are_registered(compose: dict[str, Any]) -> None:
    services = compose["services"]
    registering = [
        service
        for service in services.values()
        if "search-attribute create" in yaml.safe_dump(service.get("command", ""))
    ]
    assert len(registering) == 1, "one one-shot service registers the search attributes"
    service = registering[0]
    assert "temporal" in depends_on(service)
    assert str(service["image"]).startswith("temporalio/admin-tools:")
    script = yaml.safe_dump(service["command"])
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert name in script
        assert kind == "Keyword"
    assert "--type Keyword" in script
