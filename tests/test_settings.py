"""Settings from a TOML file, MORELIA_* variables and options: precedence, errors, printing."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest

from morelia_trio.cli import build_parser, config_from
from morelia_trio.config import SECRET, AbuseLimits, Config, Limits, Rate
from morelia_trio.settings import (
    SETTINGS,
    Layer,
    SettingError,
    from_environ,
    from_file,
    resolve,
    to_toml,
)

from .test_cli import ServerProcess, without_settings


def serve(*options: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "morelia_trio", "serve", *options],
        capture_output=True,
        text=True,
        timeout=30,
        env={**without_settings(os.environ), **variables},
    )


def printed(*options: str, **variables: str) -> dict[str, Any]:
    done = serve(*options, "--print-config", **variables)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    return tomllib.loads(done.stdout)


FILE = """\
host = "10.0.0.1"
port = 7001
fsync_batch_ms = 20.0

[limits]
max_text_chars = 111
max_name_chars = 40

[abuse]
messages_per_user = "1/1"
flows_per_user = { burst = 2, per_minute = 0.25 }
registrations_per_address = "4/4"

[timeouts]
idle = 11.0
pong = 12.0
"""


# --- through the real command line ---------------------------------------------------------


def test_options_beat_variables_beat_the_file_beats_the_defaults(tmp_path: Path) -> None:
    (tmp_path / "morelia.toml").write_text(FILE)
    said = printed(
        "--config",
        str(tmp_path / "morelia.toml"),
        "--port",
        "7003",
        "--max-text-chars",
        "333",
        "--messages-per-user",
        "3/3",
        MORELIA_PORT="7002",
        MORELIA_HOST="10.0.0.2",
        MORELIA_MAX_TEXT_CHARS="222",
        MORELIA_MAX_NAME_CHARS="42",
        MORELIA_MESSAGES_PER_USER="2/2",
        MORELIA_FLOWS_PER_USER="9/9",
        MORELIA_TIMEOUT_IDLE="22",
    )
    assert (said["port"], said["host"], said["fsync_batch_ms"]) == (7003, "10.0.0.2", 20.0)
    assert said["fsync"] == "always" and said["data_dir"] == "snapshots"  # defaults
    assert said["limits"]["max_text_chars"] == 333
    assert said["limits"]["max_name_chars"] == 42
    assert said["limits"]["max_email_chars"] == Limits().max_email_chars
    assert said["abuse"]["messages_per_user"] == "3/3"
    assert said["abuse"]["flows_per_user"] == "9/9"
    assert said["abuse"]["registrations_per_address"] == "4/4"
    assert said["abuse"]["logins_per_address"] == str(AbuseLimits().logins_per_address)
    assert (said["timeouts"]["idle"], said["timeouts"]["pong"]) == (22.0, 12.0)


def test_the_file_can_be_named_by_a_variable(tmp_path: Path) -> None:
    (tmp_path / "morelia.toml").write_text(FILE)
    assert printed(MORELIA_CONFIG=str(tmp_path / "morelia.toml"))["port"] == 7001


def test_printed_settings_read_back_as_the_same(tmp_path: Path) -> None:
    first = serve(
        "--print-config",
        "--data-dir",
        str(tmp_path / 'a "quoted" dir \\ ünïcode'),
        "--messages-per-user",
        "7/0.1",
        "--snapshot-interval",
        "inf",
        MORELIA_TIMEOUT_IDLE="0.3",
        MORELIA_AUTOBAHN_ECHO="1",
        MORELIA_REUSE_PORT="1",
    )
    assert first.returncode == 0, first.stderr
    (tmp_path / "printed.toml").write_text(first.stdout)
    again = serve("--config", str(tmp_path / "printed.toml"), "--print-config")
    assert (again.returncode, again.stdout) == (0, first.stdout)
    read_back = config_from(
        build_parser().parse_args(["serve", "--config", str(tmp_path / "printed.toml")])
    )
    assert read_back.abuse is not None and read_back.abuse.messages_per_user == Rate(7, 0.1)
    assert read_back.data_dir == tmp_path / 'a "quoted" dir \\ ünïcode'
    assert read_back.timeouts.idle == 0.3 and read_back.autobahn_echo
    assert read_back.reuse_port


def test_printed_settings_without_limits_read_back_without_limits(tmp_path: Path) -> None:
    first = serve("--print-config", "--no-limits")
    assert tomllib.loads(first.stdout)["abuse"] is False
    (tmp_path / "printed.toml").write_text(first.stdout)
    assert serve("--config", str(tmp_path / "printed.toml"), "--print-config").stdout == (
        first.stdout
    )


@pytest.mark.parametrize(
    ("file", "variables", "options"),
    [
        ("abuse = false\n", {}, []),
        ("", {"MORELIA_NO_LIMITS": "1"}, []),
        ("", {}, ["--no-limits"]),
        ("[abuse]\nmax_connections = 5\n", {"MORELIA_NO_LIMITS": "true"}, []),
    ],
)
def test_every_way_to_switch_limits_off_agrees(
    tmp_path: Path, file: str, variables: dict[str, str], options: list[str]
) -> None:
    (tmp_path / "morelia.toml").write_text(file)
    said = printed("--config", str(tmp_path / "morelia.toml"), *options, **variables)
    assert said["abuse"] is False


@pytest.mark.parametrize(
    ("file", "variables", "options"),
    [
        ("reuse_port = true\n", {}, []),
        ("", {"MORELIA_REUSE_PORT": "1"}, []),
        ("", {}, ["--reuse-port"]),
        ("reuse_port = false\n", {"MORELIA_REUSE_PORT": "true"}, []),
    ],
)
def test_every_way_to_share_the_port_agrees(
    tmp_path: Path, file: str, variables: dict[str, str], options: list[str]
) -> None:
    (tmp_path / "morelia.toml").write_text(file)
    said = printed("--config", str(tmp_path / "morelia.toml"), *options, **variables)
    assert said["reuse_port"] is True
    assert printed()["reuse_port"] is False


def test_a_variable_can_switch_limits_back_on_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "morelia.toml").write_text("abuse = false\n")
    said = printed("--config", str(tmp_path / "morelia.toml"), MORELIA_NO_LIMITS="0")
    assert said["abuse"]["max_connections"] == AbuseLimits().max_connections


def test_the_server_runs_with_the_file_it_was_given(tmp_path: Path) -> None:
    (tmp_path / "morelia.toml").write_text('abuse = false\nlog_level = "DEBUG"\n')
    server = ServerProcess(tmp_path / "data", "--config", str(tmp_path / "morelia.toml"))
    try:
        assert server.stop(signal.SIGTERM) == 0
    finally:
        server.process.kill()
    assert any("WARNING" in line and "--no-limits" in line for line in server.log), server.log
    assert any(" DEBUG " in line for line in server.log), server.log


WRONG_FILES = [
    ("prot = 8000\n", "morelia.toml: prot: unknown key"),
    ("[limits]\nmax_txt_chars = 5\n", "morelia.toml: limits.max_txt_chars: unknown key"),
    ("[abus]\nflood_strikes = 5\n", "morelia.toml: abus: unknown key"),
    ("argon2 = 1\n", "morelia.toml: argon2: unknown key"),
    ('port = "8000"\n', "morelia.toml: port: expected `int`, got `str`"),
    ("[timeouts]\nidle = true\n", "morelia.toml: timeouts.idle: expected `float`, got `bool`"),
    ("snapshot_interval = 0.0\n", "morelia.toml: snapshot_interval: expected `float` > 0.0"),
    ('fsync = "sometimes"\n', "morelia.toml: fsync: invalid enum value 'sometimes'"),
    ('log_level = "LOUD"\n', "morelia.toml: log_level: invalid enum value 'LOUD'"),
    ('[abuse]\nflows_per_user = "5"\n', "morelia.toml: abuse.flows_per_user: expected a rate"),
    ("[abuse]\nflows_per_user = 5\n", "morelia.toml: abuse.flows_per_user: expected a rate"),
    (
        "[abuse]\nflows_per_user = { burst = 0, per_minute = 1 }\n",
        "morelia.toml: abuse.flows_per_user.burst: expected `int` >= 1",
    ),
    (
        "[abuse]\nflows_per_user = { burst = 1, per_hour = 1 }\n",
        "morelia.toml: abuse.flows_per_user.per_hour: unknown key",
    ),
    ("port = \n", "morelia.toml: not valid TOML: "),
]


@pytest.mark.parametrize(("file", "expected"), WRONG_FILES)
def test_a_wrong_file_stops_start_up_in_one_line(tmp_path: Path, file: str, expected: str) -> None:
    (tmp_path / "morelia.toml").write_text(file)
    done = serve("--data-dir", str(tmp_path / "data"), "--config", str(tmp_path / "morelia.toml"))
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("morelia-trio: ") and expected in line, line
    assert not (tmp_path / "data").exists()  # refused before anything was touched


WRONG_VARIABLES = [
    ({"MORELIA_PROT": "1"}, "MORELIA_PROT: not a setting of morelia-trio serve"),
    ({"MORELIA_PORT": "eighty"}, "MORELIA_PORT: expected `int`"),
    ({"MORELIA_TIMEOUT_IDLE": "soon"}, "MORELIA_TIMEOUT_IDLE: expected `float`"),
    ({"MORELIA_MESSAGES_PER_USER": "5"}, "MORELIA_MESSAGES_PER_USER: expected a rate"),
    ({"MORELIA_MESSAGES_PER_USER": "0/5"}, "MORELIA_MESSAGES_PER_USER: expected a rate"),
    ({"MORELIA_NO_LIMITS": "maybe"}, "MORELIA_NO_LIMITS: expected 1 or 0"),
    ({"MORELIA_REUSE_PORT": "maybe"}, "MORELIA_REUSE_PORT: expected `bool`"),
    ({"MORELIA_LOG_LEVEL": "LOUD"}, "MORELIA_LOG_LEVEL: invalid enum value 'LOUD'"),
    ({"MORELIA_CONFIG": "/nonexistent/morelia.toml"}, "morelia.toml: No such file or directory"),
]


@pytest.mark.parametrize(("variables", "expected"), WRONG_VARIABLES)
def test_a_wrong_variable_stops_start_up_in_one_line(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    done = serve("--data-dir", str(tmp_path / "data"), **variables)
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("morelia-trio: ") and expected in line, line
    assert not (tmp_path / "data").exists()


def test_a_misspelt_variable_is_told_the_likely_one(tmp_path: Path) -> None:
    done = serve("--data-dir", str(tmp_path), MORELIA_TIMEOUT_IDEL="5")
    assert done.stderr.strip().endswith("(did you mean MORELIA_TIMEOUT_IDLE?)")


def test_a_non_positive_snapshot_interval_option_is_one_line(tmp_path: Path) -> None:
    done = serve("--data-dir", str(tmp_path), "--snapshot-interval", "0")
    assert done.returncode == 2
    assert done.stderr.splitlines() == ["morelia-trio: --snapshot-interval: expected `float` > 0.0"]


# --- the merging, without a process --------------------------------------------------------


def test_every_setting_is_an_option_and_every_option_a_setting() -> None:
    [commands] = [
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    serve_parser = commands.choices["serve"]
    options = {o for action in serve_parser._actions for o in action.option_strings}
    not_settings = {"-h", "--help", "--config", "--print-config", "--no-limits"}
    assert {setting.option for setting in SETTINGS} == options - not_settings


def test_variable_names_follow_the_options() -> None:
    names = {setting.option: setting.env for setting in SETTINGS}
    assert names["--port"] == "MORELIA_PORT"
    assert names["--data-dir"] == "MORELIA_DATA_DIR"
    assert names["--timeout-ping-interval"] == "MORELIA_TIMEOUT_PING_INTERVAL"
    assert names["--login-failures-per-account"] == "MORELIA_LOGIN_FAILURES_PER_ACCOUNT"


def test_later_layers_win_key_by_key_inside_tables() -> None:
    config = resolve(
        Config,
        Layer({"port": 1, "limits": {"max_text_chars": 5, "max_name_chars": 6}}),
        Layer({"limits": {"max_name_chars": 7}}),
        Layer({"abuse": {"flows_per_user": {"burst": 2, "per_minute": 3.0}}}),
    )
    assert config.port == 1
    assert (config.limits.max_text_chars, config.limits.max_name_chars) == (5, 7)
    assert config.abuse is not None and config.abuse.flows_per_user == Rate(2, 3.0)
    assert config.timeouts == Config().timeouts


def test_the_last_layer_that_says_so_decides_on_limits() -> None:
    assert resolve(Config, Layer(no_limits=True), Layer()).abuse is None
    assert resolve(Config, Layer(no_limits=True), Layer(no_limits=False)).abuse is not None


def test_variables_are_read_as_their_fields_types() -> None:
    layer = from_environ(
        {"MORELIA_PORT": "81", "MORELIA_SNAPSHOT_INTERVAL": "inf", "HOME": "/root"}
    )
    assert layer.values == {"port": 81, "snapshot_interval": float("inf")}
    assert resolve(Config, layer).port == 81


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    (tmp_path / "morelia.toml").mkdir()
    with pytest.raises(SettingError, match=r"morelia\.toml: Is a directory$"):
        from_file(tmp_path / "morelia.toml")


class WithSecrets(msgspec.Struct, frozen=True, kw_only=True):
    """Test-only: what a struct with a key's password will look like."""

    certificate: str = "/etc/morelia/cert.pem"
    key_password: Annotated[str, SECRET] = "hunter2"


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    name: Annotated[str, SECRET] = "top secret"
    tls: WithSecrets = WithSecrets()


def test_printing_hides_every_field_marked_secret() -> None:
    text = to_toml(Holder())
    assert "hunter2" not in text and "top secret" not in text
    assert "# key_password = (hidden)" in text and "# name = (hidden)" in text
    assert tomllib.loads(text) == {"tls": {"certificate": "/etc/morelia/cert.pem"}}


@pytest.mark.parametrize("text", ["plain", 'a "quote"', "back\\slash", "tab\tnew\nline\x7f", "ü😀"])
def test_any_text_prints_as_toml_that_reads_back(text: str) -> None:
    printed_text = to_toml(Config(host=text))
    assert tomllib.loads(printed_text)["host"] == text


def test_the_readmes_example_file_is_accepted(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Configuration", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "morelia.toml").write_text(example)
    config = resolve(Config, from_file(tmp_path / "morelia.toml"))
    assert config.fsync == "batch" and config.limits.max_text_chars == 4000
    assert config.abuse is not None and config.abuse.flows_per_user == Rate(5, 0.5)


def test_a_wrong_event_log_is_one_line_that_shows_no_password(tmp_path: Path) -> None:
    done = serve("--data-dir", str(tmp_path / "data"), MORELIA_EVENT_LOG="nats://ann:hunter2@h/S")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "morelia-trio: MORELIA_EVENT_LOG: expected "
        "\"nats://HOST:PORT[,HOST:PORT...]/STREAM\" (or tls://); not a HOST:PORT: '***@h'"
    ]
    done = serve("--data-dir", str(tmp_path / "data"), "--event-log", "nats://h:4222/a.b")
    assert done.stderr.splitlines() == [
        "morelia-trio: --event-log: the stream's name: 1 to 64 letters, digits, '_' or '-'"
    ]
    assert not (tmp_path / "data").exists()


def test_an_event_log_out_of_reach_stops_start_up_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = serve(
        "--data-dir", str(tmp_path), "--event-log", f"nats://ann:hunter2@127.0.0.1:{port}/S"
    )
    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"morelia-trio: cannot serve: cannot use the event log nats://***@127.0.0.1:{port}/S: "
    )
    assert "hunter2" not in line and "Connect call failed" in line


def test_the_event_log_is_printed_hidden_as_it_may_hold_a_password() -> None:
    text = to_toml(Config(event_log="nats://ann:hunter2@127.0.0.1:4222/S"))
    assert "hunter2" not in text and "# event_log = (hidden)" in text
