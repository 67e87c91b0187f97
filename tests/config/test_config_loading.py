"""Config files: shipped examples load, and every mistake is named with its file and key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from ekinerja.config.gateway import GatewayConfig
from ekinerja.config.loader import ConfigError, load_model
from ekinerja.config.store import StoreConfig

EXAMPLES = resources.files("ekinerja.config") / "examples"

GOOD = """
[gateway]
id = "opd-1"
data_dir = "buf"

[store]
url = "http://127.0.0.1:8400"
token = "${GW_TOKEN}"

[[devices]]
id = "pintu"
kind = "zk"
host = "127.0.0.1"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_shipped_examples_load() -> None:
    gateway = load_model(Path(str(EXAMPLES / "gateway.toml")), GatewayConfig)
    store = load_model(Path(str(EXAMPLES / "store.toml")), StoreConfig)
    assert gateway.gateway.id == store.gateways[0].id
    assert store.gateways[0].token == gateway.store.token


def test_env_secret_and_relative_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    config = load_model(write(tmp_path, GOOD), GatewayConfig)
    assert config.store.token == "s3cret-token-value"
    assert config.gateway.data_dir == (tmp_path / "buf").resolve()
    assert config.device_zone(config.devices[0]) == "Asia/Jakarta"
    default = load_model(write(tmp_path, GOOD.replace('data_dir = "buf"', "")), GatewayConfig)
    assert default.gateway.data_dir == (tmp_path / "data" / "gateway").resolve()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda t: t.replace('host = "127.0.0.1"', 'host = "127.0.0.1"\nhots = "x"'),
            "devices[0].hots: unknown key",
        ),
        (lambda t: t.replace('data_dir = "buf"', 'data_dir = "buf"\nport = 1'), "gateway.port: unknown key"),
        (lambda t: t + 'port = "empat"\n', "devices[0].port: Input should be a valid integer"),
        (
            lambda t: t.replace('kind = "zk"', 'kind = "zkt"'),
            "devices[0].kind: must be one of 'zk', 'pcsc' (got 'zkt')",
        ),
        (lambda t: t.replace('kind = "zk"', ""), "devices[0].kind: required key is missing"),
        (
            lambda t: t.replace('id = "opd-1"', 'id = "opd-1"\ntimezone = "WIB"'),
            "gateway.timezone: Value error, unknown IANA",
        ),
        (lambda t: t.replace('url = "http://127.0.0.1:8400"', ""), "store.url: required key is missing"),
        (lambda t: t.replace("[store]", "[store\n"), "invalid TOML"),
        (lambda t: t + "clock_threshold_s = 0\n", "devices[0].clock_threshold_s: Input should be greater than"),
        (lambda t: t + 'clock_policy = "fix"\n', "devices[0].clock_policy: Input should be 'alert' or 'correct'"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: object, expected: str) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    path = write(tmp_path, edit(GOOD))  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        load_model(path, GatewayConfig)
    message = info.value.render()
    assert str(path) in message
    assert expected in message


def test_missing_secret_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_TOKEN", raising=False)
    with pytest.raises(ConfigError, match=r"store\.token: environment variable GW_TOKEN is not set"):
        load_model(write(tmp_path, GOOD), GatewayConfig)


def test_duplicate_device_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    text = GOOD + '\n[[devices]]\nid = "pintu"\nkind = "zk"\nhost = "10.0.0.2"\n'
    with pytest.raises(ConfigError, match="'pintu' is used twice"):
        load_model(write(tmp_path, text), GatewayConfig)


def test_store_token_or_hash_exactly_one(tmp_path: Path) -> None:
    path = tmp_path / "store.toml"
    path.write_text('[[gateways]]\nid = "opd-1"\n')
    with pytest.raises(ConfigError, match="exactly one of token or token_sha256"):
        load_model(path, StoreConfig)


def test_unknown_text_encoding_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    with pytest.raises(ConfigError, match=r"devices\[0\]\.encoding: Value error, unknown text encoding 'klingon'"):
        load_model(write(tmp_path, GOOD + 'encoding = "klingon"\n'), GatewayConfig)


def test_secret_values_are_never_repeated_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "shhh")  # too short, and a secret
    with pytest.raises(ConfigError) as info:
        load_model(write(tmp_path, GOOD + "password = -987654\n"), GatewayConfig)
    message = info.value.render()
    assert "store.token: String should have at least 8 characters" in message
    assert "devices[0].password: Input should be greater than or equal to 0" in message
    assert "shhh" not in message and "987654" not in message


def test_store_url_is_shown_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    text = GOOD.replace("http://127.0.0.1:8400", "https://gw:hunter22@absensi.example.go.id:8443/api")
    config = load_model(write(tmp_path, text), GatewayConfig)
    assert config.store.shown_url() == "https://absensi.example.go.id:8443/api"


CARD_READER = """
[[devices]]
id = "kartu"
kind = "pcsc"
reader = "ACR122U"
punch_windows = [
  {start = "05:00", end = "12:00", punch = "in"},
  {start = "14:00", end = "23:00", punch = "out"},
]
"""


def test_card_reader_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    config = load_model(write(tmp_path, GOOD + CARD_READER), GatewayConfig)
    assert [d.id for d in config.terminals] == ["pintu"]
    (reader,) = config.card_readers
    assert (reader.reader, reader.debounce_s, reader.feedback) == ("ACR122U", 60.0, True)
    assert [(str(w.start), w.punch) for w in reader.punch_windows] == [("05:00:00", "in"), ("14:00:00", "out")]
    assert config.device_zone(reader) == "Asia/Jakarta"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('reader = "ACR122U"', 'reader = ""'), "devices[1].reader: String should have at least"),
        (lambda t: t.replace('reader = "ACR122U"', 'host = "x"'), "devices[1].host: unknown key"),
        (lambda t: t.replace('reader = "ACR122U"', ""), "devices[1].reader: required key is missing"),
        (lambda t: t + "debounce_s = -1\n", "devices[1].debounce_s: Input should be greater than or equal to 0"),
        (
            lambda t: t.replace('"05:00"', '"25:00"'),
            "devices[1].punch_windows[0].start: Input should be in a valid time",
        ),
        (lambda t: t.replace('punch = "in"', 'punch = "masuk"'), "devices[1].punch_windows[0].punch: Input should be"),
        (
            lambda t: t.replace('end = "23:00"', 'end = "14:00"'),
            "devices[1].punch_windows[1]: Value error, start and end",
        ),
        (
            lambda t: t.replace('"05:00"', '"05:00+07:00"'),
            "devices[1].punch_windows[0].start: Value error, must be a wall",
        ),
        (lambda t: t.replace('"05:00"', '"05:00:30"'), "devices[1].punch_windows[0].start: Value error, must be HH:MM"),
        (lambda t: t.replace('punch = "in"', 'punch = "unknown"'), "devices[1].punch_windows[0].punch: Value error"),
        (lambda t: t.replace('reader = "ACR122U"', 'reader = "   "'), "devices[1].reader: String should have at least"),
        (
            lambda t: t + '[[devices]]\nid = "kartu-2"\nkind = "pcsc"\nreader = "ACS ACR122U PICC Interface 00 00"\n',
            "card readers 'kartu' ('ACR122U') and 'kartu-2' ('ACS ACR122U PICC Interface 00 00') could watch the same",
        ),
    ],
)
def test_card_reader_mistakes_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: object, expected: str
) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    with pytest.raises(ConfigError) as info:
        load_model(write(tmp_path, edit(GOOD + CARD_READER)), GatewayConfig)  # type: ignore[operator]
    assert expected in info.value.render()


def test_the_shipped_card_reader_example_loads_once_uncommented(tmp_path: Path) -> None:
    text = (EXAMPLES / "gateway.toml").read_text()
    start = text.index('# [[devices]]\n# id = "kartu-pintu"')
    block = text[start : text.index("[web]")]
    uncommented = "\n".join(line.removeprefix("# ") for line in block.splitlines() if line.startswith("# "))
    config = load_model(write(tmp_path, text.replace(block, uncommented + "\n\n")), GatewayConfig)
    (reader,) = config.card_readers
    assert (reader.id, reader.reader, len(reader.punch_windows)) == ("kartu-pintu", "ACR122U", 2)


@pytest.mark.parametrize(
    ("mqtt", "expected"),
    [
        ('host = "b"\npassword = "pw-123456"', "mqtt: Value error, password is set without username"),
        ('host = "b"\ntls = true\nca_file = "missing-ca.pem"', "is not a file"),
        ('host = "b"\nca_file = "gateway.toml"', "ca_file is set but tls is false"),
        ('host = "b"\nbase_topic = "ekinerja/#"', "mqtt.base_topic: String should match pattern"),
        ('host = "b"\nbase_topic = "/ekinerja"', "mqtt.base_topic: String should match pattern"),
        ('host = "b"\nport = 0', "mqtt.port: Input should be greater than 0"),
    ],
)
def test_mqtt_mistakes_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mqtt: str, expected: str) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    with pytest.raises(ConfigError) as info:
        load_model(write(tmp_path, GOOD + f"\n[mqtt]\n{mqtt}\n"), GatewayConfig)
    assert expected in info.value.render()
    assert "pw-123456" not in info.value.render()


def test_web_basic_auth_needs_both_and_port_zero_is_any(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_TOKEN", "s3cret-token-value")
    with pytest.raises(ConfigError, match="give both username and password"):
        load_model(write(tmp_path, GOOD + '\n[web]\nusername = "it"\n'), GatewayConfig)
    config = load_model(write(tmp_path, GOOD + '\n[web]\nlisten = "127.0.0.1:0"\n'), GatewayConfig)
    assert config.web.listen == "127.0.0.1:0" and config.mqtt is None and config.alerts.log_percent == 90
