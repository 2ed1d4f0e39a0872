"""compose.yaml is valid and only uses commands and settings that exist in this project."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from rag.cli import main
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_services_volumes_and_published_ports():
    doc = _compose()
    assert {"postgres", "api", "worker"} <= set(doc["services"])
    for name, service in doc["services"].items():
        assert "healthcheck" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("${", "./")) or source in doc["volumes"], volume
    published = {name for name, s in doc["services"].items() if s.get("ports")}
    assert published == {"api"}
    assert (REPO / "Dockerfile").is_file()


def test_commands_and_environment_exist_in_the_project():
    doc = _compose()
    known = {f"RAG_{name.upper()}" for name in Settings.model_fields}
    commands = set(main.commands)
    for name, service in doc["services"].items():
        if name == "postgres":
            continue
        command = service["command"]
        assert command[0] == "rag" and command[1] in commands, command
        result = CliRunner().invoke(main, [command[1], "--help"])
        assert result.exit_code == 0, result.output
        for var in service["environment"]:
            assert var in known, f"{name} sets {var}, which no setting reads"
