"""``reunite keys`` and ``reunite users``: against a real store, and without the heavy
libraries (a fresh interpreter shows what they imported)."""

import io
import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

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
