"""Every field of both config files, given a value of the wrong type, is named in the error (exit 2).

The fields are found from the pydantic models themselves, so a field added later is covered too.
Each case starts from a valid file (the shipped example, with an [mqtt] table and a card reader
added) and puts an inline table where the field's value goes: wrong for every scalar, list and table.
"""

from __future__ import annotations

import copy
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ekinerja import cli
from ekinerja.config.gateway import GatewayConfig, PcscDevice, PunchWindowEntry, ZkDevice
from ekinerja.config.loader import ConfigError, load_model
from ekinerja.config.store import StoreConfig

EXAMPLES = resources.files("ekinerja.config") / "examples"
WRONG = {"not": "this"}


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def dump(data: dict[str, Any]) -> str:
    """A TOML document from plain data (tables, arrays of tables, scalars)."""
    lines = [f"{k} = {_toml(v)}" for k, v in data.items() if not isinstance(v, dict | list)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += [f"[{key}]", *(f"{k} = {_toml(v)}" for k, v in value.items())]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for entry in value:
                lines += [f"[[{key}]]", *(f"{k} = {_toml(v)}" for k, v in entry.items())]
        elif isinstance(value, list):
            lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def gateway_base() -> dict[str, Any]:
    data = tomllib.loads((EXAMPLES / "gateway.toml").read_text())
    data["devices"].append(
        {
            "id": "kartu",
            "kind": "pcsc",
            "reader": "ACR122U",
            "punch_windows": [{"start": "05:00", "end": "12:00", "punch": "in"}],
        }
    )
    data["mqtt"] = {"host": "mqtt.example.go.id", "username": "opd", "password": "secret-pw"}
    return data


def store_base() -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / "store.toml").read_text())


def _fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def gateway_cases() -> list[tuple[tuple[Any, ...], str]]:
    """(where in the data, the key path the error must name) for every gateway field."""
    cases: list[tuple[tuple[Any, ...], str]] = [((section,), section) for section in _fields(GatewayConfig)]
    for section, field in GatewayConfig.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            cases += [((section, name), f"{section}.{name}") for name in _fields(model)]
    for n, model in enumerate((ZkDevice, PcscDevice)):
        cases += [(("devices", n, name), f"devices[{n}].{name}") for name in _fields(model)]
    cases += [
        (("devices", 1, "punch_windows", 0, name), f"devices[1].punch_windows[0].{name}")
        for name in _fields(PunchWindowEntry)
    ]
    return cases


def store_cases() -> list[tuple[tuple[Any, ...], str]]:
    cases: list[tuple[tuple[Any, ...], str]] = []
    for section, field in StoreConfig.model_fields.items():
        cases.append(((section,), section))
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            cases += [((section, name), f"{section}.{name}") for name in _fields(model)]
    base = store_base()
    for table in ("gateways", "clients"):
        entry_model = StoreConfig.model_fields[table].annotation.__args__[0]  # type: ignore[union-attr]
        cases += [((table, 0, name), f"{table}[0].{name}") for name in _fields(entry_model) if table in base]
    return cases


def spoiled(base: dict[str, Any], where: tuple[Any, ...]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    node: Any = data
    for key in where[:-1]:
        node = node.setdefault(key, {}) if isinstance(key, str) else node[key]
    node[where[-1]] = WRONG
    return data


@pytest.mark.parametrize(("where", "named"), gateway_cases(), ids=lambda v: str(v))
def test_every_gateway_field(tmp_path: Path, where: tuple[Any, ...], named: str) -> None:
    _check(tmp_path, "gateway.toml", dump(spoiled(gateway_base(), where)), GatewayConfig, named)


@pytest.mark.parametrize(("where", "named"), store_cases(), ids=lambda v: str(v))
def test_every_store_field(tmp_path: Path, where: tuple[Any, ...], named: str) -> None:
    _check(tmp_path, "store.toml", dump(spoiled(store_base(), where)), StoreConfig, named)


def _check(tmp_path: Path, name: str, text: str, model: type[BaseModel], named: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_model(path, model)
    message = info.value.render()
    assert info.value.exit_code == 2
    assert any(line.startswith(f"  - {named}") for line in message.splitlines()), message
    assert "secret-pw" not in message and "Traceback" not in message


def test_the_command_line_exits_2_and_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(dump(spoiled(gateway_base(), ("alerts", "log_percent"))))
    assert cli.main(["gateway", "check-config", "--config", str(path)]) == 2
    assert "alerts.log_percent: " in capsys.readouterr().err
