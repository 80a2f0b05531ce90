"""``reunite agencies``: list, add, rename, retire; audited; light (no dlib, FAISS or web)."""

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

from reunite.cli import main
from tests.cli.test_accounts import HEAVY, HEAVY_OURS


def test_agencies_are_added_listed_renamed_and_retired(workdir, capsys):
    assert main(["agencies", "add", "SH-RESCUE-01", "上海市救助管理站"]) == 0
    assert main(["agencies", "add", "BJ-01", "北京救助站"]) == 0
    assert main(["agencies", "rename", "BJ-01", "北京市救助管理站"]) == 0
    assert main(["agencies", "retire", "SH-RESCUE-01"]) == 0
    capsys.readouterr()
    assert main(["agencies", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["BJ-01", "active"],
        ["SH-RESCUE-01", "retired"],
    ]
    assert lines[0].endswith("北京市救助管理站")
    assert main(["agencies", "retire", "--undo", "SH-RESCUE-01"]) == 0
    with closing(sqlite3.connect(workdir / "data" / "reunite.db")) as db:
        events = [
            (action, json.loads(details))
            for action, details in db.execute(
                "SELECT action, details FROM audit_events WHERE action LIKE 'agency.%' ORDER BY id"
            )
        ]
    assert [action for action, _ in events] == [
        "agency.add",
        "agency.add",
        "agency.rename",
        "agency.retire",
        "agency.restore",
    ]
    assert all("救助" not in json.dumps(details, ensure_ascii=False) for _, details in events)


def test_bad_codes_and_unknown_agencies_are_refused_with_a_reason(workdir, capsys):
    assert main(["agencies", "add", "SH RESCUE", "上海"]) == 4
    assert "no spaces" in capsys.readouterr().err
    assert main(["agencies", "add", "SH", "  "]) == 4
    assert main(["agencies", "add", "SH", "上海"]) == 0
    assert main(["agencies", "add", "SH", "上海二"]) == 5
    assert "already an agency" in capsys.readouterr().err
    assert main(["agencies", "retire", "NOPE"]) == 3


def test_agencies_commands_stay_light(tmp_path):
    code = f"""
import json, sys
from reunite.cli import main
codes = [main(["agencies", "add", "SH-01", "Shanghai"]), main(["agencies", "list"])]
loaded = [
    m for m in sys.modules
    if m.split(".")[0] in {set(HEAVY)!r}
    or any(m == o or m.startswith(o + ".") for o in {HEAVY_OURS!r})
]
print(json.dumps({{"codes": codes, "loaded": sorted(loaded)}}))
"""
    env = os.environ | {
        "REUNITE_DATA_DIR": str(tmp_path / "data"),
        "REUNITE_INDEX_DIR": str(tmp_path / "index"),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"codes": [0, 0], "loaded": []}
