"""``reunite keys`` and ``reunite users``: against a real store, and without the heavy
libraries (a fresh interpreter shows what they imported)."""

import io
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest

from reunite.cli import main

HEAVY = ("dlib", "faiss", "face_recognition", "fastapi", "starlette", "uvicorn", "PIL")
HEAVY_OURS = ("reunite.service", "reunite.faces", "reunite.index", "reunite.api", "reunite.web")
LIGHT_COMMANDS = """
import json, sys
from reunite.cli import main

sys.stdin = open(0)
codes = [
    main(["keys", "create", "--role", "police", "--agency", "SH-PSB"]),
    main(["keys", "list"]),
    main(["users", "create", "anna", "--role", "staff", "--password-stdin"]),
    main(["users", "disable", "anna"]),
    main(["migrate"]),
]
try:
    main(["--help"])
except SystemExit:
    pass
loaded = [
    m for m in sys.modules
    if m.split(".")[0] in {heavy} or any(m == o or m.startswith(o + ".") for o in {ours})
]
print(json.dumps({{"codes": codes, "loaded": sorted(loaded)}}))
"""


def audit_actions(workdir):
    with closing(sqlite3.connect(workdir / "data" / "reunite.db")) as db:
        return [
            (a, json.loads(d)) for a, d in db.execute("SELECT action, details FROM audit_events")
        ]


def test_keys_create_list_and_revoke(workdir, capsys):
    assert main(["keys", "create", "--role", "police", "--agency", "SH-PSB", "--label", "PSB"]) == 0
    captured = capsys.readouterr()
    key = captured.out.strip()
    assert key.startswith("rk_") and "shown only now" in captured.err
    prefix = key.split("_")[1]
    assert main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert prefix in listed and "active" in listed and key not in listed
    assert main(["keys", "revoke", prefix]) == 0
    capsys.readouterr()
    assert main(["keys", "list"]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["keys", "create", "--role", "police"]) == 4  # a police key needs an agency
    assert main(["keys", "revoke", "00000000"]) == 3
    assert main(["keys", "create", "--role", "admin", "--expires-in-days", "0"]) == 4
    assert audit_actions(workdir) == [
        ("key.create", {"key_id": 1, "prefix": prefix, "role": "police", "agency": "SH-PSB"}),
        ("key.revoke", {"key_id": 1, "prefix": prefix}),
    ]


def test_users_create_and_disable(workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "anna", "--role", "staff", "--password-stdin"]) == 0
    assert "anna (staff)" in capsys.readouterr().out
    assert main(["users", "disable", "anna"]) == 0
    assert main(["users", "disable", "nobody"]) == 3
    assert audit_actions(workdir) == [
        ("user.create", {"user_id": 1, "role": "staff"}),
        ("user.disable", {"user_id": 1}),
    ]
    with closing(sqlite3.connect(workdir / "data" / "reunite.db")) as db:
        assert db.execute("SELECT disabled, session_epoch FROM users").fetchall() == [(1, 1)]


def test_users_list_enable_reset_password_and_set_role(workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "anna", "--role", "staff", "--password-stdin"]) == 0
    assert main(["users", "disable", "anna"]) == 0
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    listed = capsys.readouterr().out
    assert "anna" in listed and "staff" in listed and "disabled" in listed
    assert "created 20" in listed and "password" not in listed
    assert main(["users", "enable", "anna"]) == 0
    assert main(["users", "enable", "anna"]) == 0  # already enabled: fine
    assert main(["users", "set-role", "anna", "admin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another good passphrase\n"))
    assert main(["users", "reset-password", "anna", "--password-stdin"]) == 0
    out = capsys.readouterr().out
    assert "another good passphrase" not in out and "new password" in out
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    listed = capsys.readouterr().out
    assert "admin" in listed and "enabled" in listed and "disabled" not in listed
    for args in (["enable", "nobody"], ["set-role", "nobody", "staff"]):
        assert main(["users", *args]) == 3
    monkeypatch.setattr("sys.stdin", io.StringIO("another good passphrase\n"))
    assert main(["users", "reset-password", "nobody", "--password-stdin"]) == 3
    assert "no user 'nobody'" in capsys.readouterr().err
    assert audit_actions(workdir) == [
        ("user.create", {"user_id": 1, "role": "staff"}),
        ("user.disable", {"user_id": 1}),
        ("user.enable", {"user_id": 1}),
        ("user.enable", {"user_id": 1}),
        ("user.set_role", {"user_id": 1, "role": "admin", "previous": "staff"}),
        ("user.reset_password", {"user_id": 1}),
    ]
    with closing(sqlite3.connect(workdir / "data" / "reunite.db")) as db:
        assert db.execute("SELECT disabled, role, session_epoch FROM users").fetchall() == [
            (0, "admin", 2)
        ]


def test_the_new_password_signs_in_and_the_old_one_no_longer(workdir, monkeypatch):
    from reunite import accounts
    from reunite.cli.shared import loaded_settings, opened_store
    from reunite.errors import NotAuthenticated

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "anna", "--role", "staff", "--password-stdin"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("another good passphrase\n"))
    assert main(["users", "reset-password", "anna", "--password-stdin"]) == 0
    with opened_store(loaded_settings()) as store:
        assert accounts.signed_in_user(store, "anna", "another good passphrase").username == "anna"
        with pytest.raises(NotAuthenticated):
            accounts.signed_in_user(store, "anna", "a long enough password")


def test_set_role_refuses_an_unknown_role(workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "anna", "--role", "staff", "--password-stdin"]) == 0
    with pytest.raises(SystemExit) as exit_:
        main(["users", "set-role", "anna", "police"])
    assert exit_.value.code == 2  # argparse: not one of the choices


def test_password_policy_refuses_short_and_common_passwords(workdir, capsys, monkeypatch):
    def create(password, name="anna"):
        monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
        return main(["users", "create", name, "--role", "staff", "--password-stdin"])

    assert create("short pw") == 4
    assert "at least 10 characters" in capsys.readouterr().err
    assert create("Password123") == 4  # common, whatever the case
    err = capsys.readouterr().err
    assert "most common" in err and "Password123" not in err
    assert create("qwertyuiop") == 4
    capsys.readouterr()
    monkeypatch.setenv("REUNITE_MIN_PASSWORD_LENGTH", "16")
    assert create("a long enough pw") == 0  # 16 characters
    assert create("fifteen chars!!", name="bob") == 4
    assert "at least 16 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("iloveyou\n"))
    monkeypatch.setenv("REUNITE_MIN_PASSWORD_LENGTH", "8")
    assert main(["users", "reset-password", "anna", "--password-stdin"]) == 4
    assert "most common" in capsys.readouterr().err
    monkeypatch.setenv("REUNITE_MIN_PASSWORD_LENGTH", "4")
    assert create("a long enough password", name="carol") == 8  # below the setting's floor
    assert [a for a, _ in audit_actions(workdir)] == ["user.create"]


def test_common_passwords_are_shipped_and_lowercase():
    from reunite.accounts import common_passwords

    shipped = common_passwords()
    assert len(shipped) > 300
    assert all(p == p.lower() and p.strip() == p for p in shipped)
    assert {"password", "123456789", "qwerty123"} <= shipped


def test_light_commands_import_neither_dlib_nor_faiss_nor_the_service(tmp_path):
    env = os.environ | {
        "REUNITE_DATA_DIR": str(tmp_path / "data"),
        "REUNITE_INDEX_DIR": str(tmp_path / "index"),
    }
    code = LIGHT_COMMANDS.format(heavy=set(HEAVY), ours=HEAVY_OURS)
    done = subprocess.run(
        [sys.executable, "-c", code],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"codes": [0, 0, 0, 0, 0], "loaded": []}


def test_users_display_names_set_listed_and_audited_without_the_name(workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    create = ["users", "create", "anna", "--role", "staff", "--password-stdin"]
    assert main([*create, "--display-name", " 李安娜 "]) == 0
    capsys.readouterr()
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("李安娜")
    assert main(["users", "set-display-name", "anna", "Anna Li"]) == 0
    out = capsys.readouterr().out
    assert "user 1 has a new display name: anna" in out and "Anna Li" not in out
    assert main(["users", "list"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("  Anna Li")
    assert main(["users", "set-display-name", "anna", "x" * 101]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "1 to 100 characters" in err
    assert main(["users", "set-display-name", "anna", "Anna\tLi"]) == 4
    assert "control characters" in capsys.readouterr().err
    assert main(["users", "set-display-name", "nobody", "Anna"]) == 3
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert (
        main(
            ["users", "create", "bob", "--role", "staff", "--password-stdin", "--display-name", ""]
        )
        == 4
    )
    assert audit_actions(workdir) == [
        ("user.create", {"user_id": 1, "role": "staff"}),
        ("user.set_display_name", {"user_id": 1}),
    ]
    with closing(sqlite3.connect(workdir / "data" / "reunite.db")) as db:
        assert db.execute("SELECT username, display_name FROM users").fetchall() == [
            ("anna", "Anna Li")
        ]


def test_the_last_enabled_admin_stays(workdir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "root", "--role", "admin", "--password-stdin"]) == 0
    capsys.readouterr()
    assert main(["users", "disable", "root"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "last enabled admin" in err
    assert main(["users", "set-role", "root", "staff"]) == 5
    assert "last enabled admin" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert main(["users", "create", "anna", "--role", "admin", "--password-stdin"]) == 0
    assert main(["users", "set-role", "root", "staff"]) == 0
    assert main(["users", "disable", "anna"]) == 5
    assert [a for a, _ in audit_actions(workdir)] == ["user.create", "user.create", "user.set_role"]
