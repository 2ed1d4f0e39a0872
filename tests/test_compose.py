"""compose.yaml is valid and only uses commands and settings that exist in this project."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from cli.main import main
from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _compose():
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_services_volumes_and_published_ports():
    doc = _compose()
    assert {"postgres", "vllm", "api", "worker"} <= set(doc["services"])
    for name, service in doc["services"].items():
        assert "healthcheck" in service, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith(("${", "./")) or source in doc["volumes"], volume
    published = {name for name, s in doc["services"].items() if s.get("ports")}
    assert published == {"api", "gateway"}  # the gateway only in the "replicas" profile
    assert doc["services"]["gateway"]["profiles"] == ["replicas"]
    assert (REPO / "Dockerfile").is_file()


def test_commands_and_environment_exist_in_the_project():
    doc = _compose()
    from rag.settings import EscalationSettings

    known = {f"RAG_{name.upper()}" for name in Settings.model_fields}
    known |= {f"RAG_ESCALATION__{name.upper()}" for name in EscalationSettings.model_fields}
    commands = set(main.commands)
    for name, service in doc["services"].items():
        if name in ("postgres", "vllm", "gateway"):
            continue
        command = service["command"]
        assert command[0] == "rag" and command[1] in commands, command
        result = CliRunner().invoke(main, [command[1], "--help"])
        assert result.exit_code == 0, result.output
        for var in service["environment"]:
            assert var in known, f"{name} sets {var}, which no setting reads"


def test_api_generates_through_the_vllm_service_from_a_mounted_model():
    doc = _compose()
    vllm, api = doc["services"]["vllm"], doc["services"]["api"]
    assert "vllm/vllm-openai:" in vllm["image"]
    assert vllm["environment"]["HF_HUB_OFFLINE"] == "1"
    assert any(v.endswith(":/models:ro") for v in vllm["volumes"])
    command = vllm["command"]
    port = command[command.index("--port") + 1]
    assert command[command.index("--model") + 1].startswith("/models/")
    assert api["environment"]["RAG_GENERATOR"] == "openai"
    assert api["environment"]["RAG_GENERATOR_BASE_URL"] == f"http://vllm:{port}/v1"
    assert api["depends_on"]["vllm"]["condition"] == "service_healthy"
    assert "vllm" not in doc["services"]["worker"].get("depends_on", {})


def test_escalation_is_off_unless_the_operator_turns_it_on():
    api = _compose()["services"]["api"]["environment"]
    assert api["RAG_ESCALATION__ENABLED"] == "${RAG_ESCALATION_ENABLED:-false}"
    assert not any(v == "RAG_ESCALATION__API_KEY" and not str(api[v]).startswith("${") for v in api)


def test_replicas_profile_runs_a_second_api_behind_a_gateway():
    doc = _compose()
    api, replica = doc["services"]["api"], doc["services"]["api-replica"]
    assert replica["environment"] == api["environment"] and replica["command"] == api["command"]
    assert replica["volumes"] == api["volumes"]  # the same index volume: one generation, read by both
    assert "ports" not in replica
    gateway = doc["configs"]["gateway"]["content"]
    assert "server api:8000;" in gateway and "server api-replica:8000;" in gateway
    assert "proxy_buffering off" in gateway  # server-sent events pass through unbuffered
