"""moneyd.config on its own: a missing file is an empty config, saving is atomic and private, and every way a
config file can be wrong is one ConfigError naming the file and the problem."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from moneyd.config import VERSION, Config, ConfigError, default_path, is_js_config, not_configured, user_dir
from moneyd.errors import MoneydError


def test_a_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    cfg = Config.load(tmp_path / "moneyd.json")
    assert cfg.data == {"version": VERSION}
    assert cfg.section("xrp") is None
    assert not (tmp_path / "moneyd.json").exists()  # loading writes nothing


def test_save_then_load_round_trips_privately_and_atomically(tmp_path: Path) -> None:
    path = tmp_path / "deeper" / "moneyd.json"  # its directory is made
    cfg = Config(path, {})
    cfg.set_section("btp", {"parent": "btp+wss://user:token@parent.example"})
    cfg.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the parent URL carries a token
    assert path.read_text().endswith("}\n")
    assert Config.load(path).data == {"btp": {"parent": "btp+wss://user:token@parent.example"}, "version": VERSION}

    cfg.set_section("btp", {"parent": "btp+wss://other.example"})
    cfg.save()
    assert Config.load(path).section("btp") == {"parent": "btp+wss://other.example"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["moneyd.json"]  # no temporary file left behind


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", r"is not valid JSON \(line 1, column 2: "),
        (b"[1, 2]", r"must hold a JSON object, not list"),
        (b'"text"', r"must hold a JSON object, not str"),
        (b"\xff\xfe\x00garbage", r"is not a text file \(invalid start byte\); is it the right file\?"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "moneyd.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem) as raised:
        Config.load(path)
    assert str(raised.value).startswith(str(path))
    assert isinstance(raised.value, MoneydError) and isinstance(raised.value, ValueError)


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory, not a config file; give a file path"):
        Config.load(tmp_path)
    with pytest.raises(ConfigError, match=r"^cannot save the config: .*is a directory, not a file"):
        Config(tmp_path, {}).save()


def test_saving_where_a_directory_cannot_be_made_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"^cannot save the config: "):
        Config(tmp_path / "a-file" / "moneyd.json", {}).save()


def test_a_section_must_be_an_object(tmp_path: Path) -> None:
    path = tmp_path / "moneyd.json"
    path.write_text(json.dumps({"version": 1, "xrp": "secret"}))
    with pytest.raises(ConfigError, match=r"section 'xrp' must be a JSON object"):
        Config.load(path).section("xrp")


def test_where_the_config_lives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONEYD_CONFIG", str(tmp_path / "mine.json"))
    assert default_path() == default_path(testnet=True) == tmp_path / "mine.json"
    monkeypatch.delenv("MONEYD_CONFIG")
    assert default_path().name == "moneyd.json" and default_path(testnet=True).name == "moneyd-test.json"
    # A home-less platformdirs answer ("~/...") is refused rather than becoming a folder named "~" here.
    with pytest.raises(ConfigError, match=r"cannot find your home directory \(HOME is not set\); set HOME, or -c"):
        user_dir("~/.config/moneyd", "-c")


def test_not_configured_says_which_command_fixes_it(tmp_path: Path) -> None:
    path = tmp_path / "moneyd.json"
    message = not_configured(Config(path, {"version": 1}), "eth", testnet=True)
    assert message == f"no eth uplink in {path}; run `moneyd --testnet -c {path} eth:configure` first"

    js_v1 = {"version": 1, "uplinks": {"xrp": {"secret": "s..."}}}
    js_v0 = {"secret": "s...", "parent": "x"}
    assert is_js_config(js_v1) and is_js_config(js_v0) and not is_js_config({"version": 1, "xrp": {}})
    hint = not_configured(Config(path, js_v0), "xrp", testnet=False)
    assert hint.startswith(f"{path} is a JS moneyd config: import it once with `moneyd xrp:configure --import-js {path}`")
    assert not_configured(Config(path, js_v1), "eth", testnet=False) == (
        f"{path} is a JS moneyd config; set up this uplink with `moneyd eth:configure`")


def test_the_js_config_to_import_is_the_one_the_js_moneyd_uses_on_that_network(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".moneyd.json").write_text("{}")
    path = tmp_path / "moneyd.json"
    assert "--import-js" not in not_configured(Config(path, {"version": 1}), "xrp", testnet=True)
    (tmp_path / ".moneyd.test.json").write_text("{}")
    hint = not_configured(Config(path, {"version": 1}), "xrp", testnet=True)
    assert hint.endswith(f"`moneyd --testnet -c {path} xrp:configure --import-js {tmp_path / '.moneyd.test.json'}`)")
    assert not_configured(Config(path, {"version": 1}), "xrp", testnet=False).endswith(
        f"`moneyd -c {path} xrp:configure --import-js {tmp_path / '.moneyd.json'}`)")
