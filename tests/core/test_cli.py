"""The ``showme`` command: each subcommand works, explains itself, and fails clearly."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from showme_core.cli import build_parser, main
from tests.pictures import jpeg, scene


def run(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "SHOWME_DATA_DIR": str(tmp_path),
        "SHOWME_ARGON2_TIME_COST": "1",
        "SHOWME_ARGON2_MEMORY_KIB": "1024",
        "SHOWME_LOG_FILE": str(tmp_path / "cli.log"),
    }
    return subprocess.run(
        [sys.executable, "-m", "showme_core.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["migrate"],
        ["org", "create"],
        ["user", "create"],
        ["apikey", "create"],
        ["credits", "add"],
        ["plugins"],
        ["purge"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: showme" in capsys.readouterr().out


def test_administration_from_scratch(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    org = run(tmp_path, "org", "create", "--slug", "north", "--name", "North", "--region", "be")
    assert org.returncode == 0, org.stderr
    assert "50 SMS credits" in org.stdout
    user = run(
        tmp_path,
        "user",
        "create",
        "--org",
        "north",
        "--email",
        "d@north.test",
        "--password-stdin",
        stdin="a long password\n",
    )
    assert user.returncode == 0, user.stderr
    key = run(tmp_path, "apikey", "create", "--org", "north", "--name", "CAD")
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip().splitlines()[-1]
    assert secret.startswith("smk_") and len(secret) > 40
    assert "not shown again" in key.stderr
    credits = run(tmp_path, "credits", "add", "--org", "north", "--amount", "25")
    assert "75 SMS credits" in credits.stdout
    purge = run(tmp_path, "purge", "--org", "north")
    assert purge.returncode == 0, purge.stderr
    assert "purged 0 pictures past retention" in purge.stdout
    plugins = run(tmp_path, "plugins")
    assert "pigeon" in plugins.stdout and "installed" in plugins.stdout
    assert (
        secret not in (tmp_path / "cli.log").read_text()
        if (tmp_path / "cli.log").exists()
        else True
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["org", "create", "--slug", "x", "--name", "n", "--region", "BE"], "slug"),
        (["org", "create", "--slug", "ok-slug", "--name", "n", "--region", "ZZ"], "region"),
        (["user", "create", "--org", "nowhere", "--email", "a@b.c", "--password-stdin"], "nowhere"),
        (["apikey", "create", "--org", "nowhere", "--name", "x"], "nowhere"),
        (["credits", "add", "--org", "nowhere", "--amount", "-3"], "positive"),
        (["purge", "--org", "nowhere"], "nowhere"),
    ],
)
def test_errors_are_clear_and_non_zero(tmp_path: Path, args: list[str], message: str) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    done = run(tmp_path, *args, stdin="a long password\n")
    assert done.returncode == 1
    assert done.stderr.startswith("showme: error:")
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    done = run(tmp_path, "org", "create", "--slug", "north", "--name", "n", "--region", "BE")
    assert done.returncode == 1
    assert "showme migrate" in done.stderr


def test_bad_configuration_is_reported(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("port = 'not a number'\n")
    assert main(["--config", str(config), "plugins"]) == 1
    config.write_text("secret_keys = [{ '$env' = 'SHOWME_UNSET_SECRET' }]\n")
    assert main(["--config", str(config), "plugins"]) == 1


def test_check_asks_consumers_and_adapters_that_can_answer(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0

    def check_with(journal: Path) -> subprocess.CompletedProcess[str]:
        config = tmp_path / "showme.toml"
        settings = json.dumps({"pigeon": {"journal": str(journal)}}).replace('": ', '" = ')
        config.write_text(
            'public_url = "https://showme.psap.example"\n'
            f'plugins = ["pigeon"]\nplugin_settings = {settings}\n'
        )
        return run(tmp_path, "--config", str(config), "check")

    good = check_with(tmp_path / "journal.txt")
    assert good.returncode == 0, good.stdout + good.stderr
    assert f"pigeon-journal: OK - journal in {tmp_path}" in good.stdout
    bad = check_with(tmp_path / "missing" / "journal.txt")
    assert bad.returncode == 1 and "pigeon-journal: FAILED - cannot write in" in bad.stdout


def test_check_gives_a_verdict_per_provider(tmp_path: Path) -> None:
    import json

    from tests.plugins.showme_sms_clickatell.fake_clickatell import FakeClickatell

    assert run(tmp_path, "migrate").returncode == 0
    unset = run(tmp_path, "check")
    assert unset.returncode == 1
    assert "public_url: NOT SET" in unset.stdout
    (tmp_path / "plain.toml").write_text('public_url = "https://showme.psap.example"\n')
    plain = run(tmp_path, "--config", str(tmp_path / "plain.toml"), "check")
    assert plain.returncode == 0, plain.stdout
    assert "outbox: nothing to check" in plain.stdout
    assert "public_url: https://showme.psap.example" in plain.stdout
    fake = FakeClickatell().start()
    try:

        def check_with(base_url: str, api_key: str) -> subprocess.CompletedProcess[str]:
            settings = {
                "sms_clickatell": {
                    "api_key": api_key,
                    "callback_token": "a-long-enough-callback-token",
                    "base_url": base_url,
                }
            }
            env_file = tmp_path / "showme.toml"
            table = json.dumps(settings).replace('": ', '" = ')
            env_file.write_text(
                'public_url = "https://showme.psap.example"\n'
                f'plugins = ["sms_clickatell"]\nplugin_settings = {table}\n'
            )
            return run(tmp_path, "--config", str(env_file), "check")

        good = check_with(fake.url, fake.api_key)
        assert good.returncode == 0, good.stdout + good.stderr
        assert "clickatell: OK" in good.stdout
        refused = check_with(fake.url, "a-wrong-key")
        assert refused.returncode == 1
        assert "clickatell: FAILED" in refused.stdout
        unreachable = check_with("http://127.0.0.1:9", fake.api_key)
        assert unreachable.returncode == 1 and "clickatell: FAILED" in unreachable.stdout
    finally:
        fake.stop()


def test_files_at_rest_are_private(start_server: Any) -> None:
    """The database, its WAL, the media and the log are the operator's alone (0600, folders
    0700), as is a database an earlier version left readable by everyone."""
    server = start_server()
    caller_link = _made_link(server)
    picture = httpx.post(
        f"{server.url}/api/v1/caller/media",
        headers={"X-ShowMe-Link": caller_link},
        files={"picture": ("p.jpg", jpeg(scene(64, 48)), "image/jpeg")},
        timeout=30,
    )
    assert picture.status_code == 201, picture.text
    data_dir = server.data_dir
    ours = [
        path
        for path in data_dir.rglob("*")
        if path.name != "stdout.log"  # the test harness's own capture, not ShowMe's
    ]
    names = {path.name for path in ours}
    assert {"showme.db", "showme.db-wal", "server.log", "media"} <= names, names
    assert any(path.suffix == ".jpg" for path in ours)
    for path in [data_dir, *ours]:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o077 == 0, f"{path.relative_to(data_dir.parent)} is {oct(mode)}"


def test_serve_tightens_what_an_earlier_version_left_open(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    database = tmp_path / "showme.db"
    database.chmod(0o644)
    tmp_path.chmod(0o755)
    from showme_core.cli import make_private
    from showme_core.config import load_settings

    make_private(load_settings(environ={"SHOWME_DATA_DIR": str(tmp_path)}))
    assert database.stat().st_mode & 0o777 == 0o600
    assert tmp_path.stat().st_mode & 0o777 == 0o700


def _made_link(server: Any) -> str:
    server.cli("org", "create", "--slug", "north", "--name", "North", "--region", "BE")
    key = server.cli("apikey", "create", "--org", "north", "--name", "CAD").split()[-1]
    created = httpx.post(
        f"{server.url}/api/v1/invites",
        headers={"Authorization": f"Bearer {key}"},
        json={"phone": "+32470123456", "send_sms": False},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    return str(created.json()["link"].split("#", 1)[1])


def test_an_organisation_configures_a_plugin(tmp_path: Path) -> None:
    assert run(tmp_path, "migrate").returncode == 0
    created = run(tmp_path, "org", "create", "--slug", "north", "--name", "N", "--region", "BE")
    assert created.returncode == 0, created.stderr
    config = tmp_path / "showme.toml"
    config.write_text('plugins = ["pigeon"]\n')
    done = run(
        tmp_path,
        "--config",
        str(config),
        "org",
        "configure",
        "--org",
        "north",
        "--plugin",
        "pigeon",
        "--json",
        '{"fail_numbers": ["+32470000000"]}',
    )
    assert done.returncode == 0, done.stderr
    assert "north: settings for pigeon" in done.stdout
    unknown = run(
        tmp_path,
        "--config",
        str(config),
        "org",
        "configure",
        "--org",
        "north",
        "--plugin",
        "pigeonn",
        "--json",
        "{}",
    )
    assert unknown.returncode == 1 and "no loaded plugin is named 'pigeonn'" in unknown.stderr
    bad = run(
        tmp_path,
        "--config",
        str(config),
        "org",
        "configure",
        "--org",
        "north",
        "--plugin",
        "pigeon",
        "--json",
        "[1]",
    )
    assert bad.returncode == 1 and "must be an object" in bad.stderr
    # The plugin's own command (showme_register_commands) sees the organisation's block.
    listed = run(tmp_path, "--config", str(config), "--help")
    assert "pigeon-settings" in listed.stdout
    org_id = re.search(r"id ([\w-]+),", created.stdout)
    assert org_id is not None
    shown = run(tmp_path, "--config", str(config), "pigeon-settings", org_id.group(1))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {"fail_numbers": ["+32470000000"]}
    missing = run(tmp_path, "--config", str(config), "pigeon-settings", "nobody")
    assert missing.returncode == 1 and missing.stderr.startswith("showme: error:")
    # Without the plugin active, its command does not exist.
    assert run(tmp_path, "pigeon-settings", org_id.group(1)).returncode == 2
    cleared = run(tmp_path, "org", "configure", "--org", "north", "--plugin", "pigeon", "--clear")
    assert cleared.returncode == 0 and "settings for no plugin" in cleared.stdout
