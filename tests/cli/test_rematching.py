"""``reunite rematch``: in-process against a real store, in parts with ``--limit``, and in a
subprocess beside a running ``reunite serve`` (SQLite and PostgreSQL)."""

import json

import httpx2

from reunite.cli import main
from reunite.service import Reunite
from tests.conftest import settings_in
from tests.server import Server, cli, store_env
from tests.test_rematching import TIGHT, gallery


def test_rematch_in_parts_then_nothing_left(workdir, finder, sample, capsys, monkeypatch):
    with Reunite.open(settings_in(workdir), finder=finder) as service:
        gallery(service, sample)
    monkeypatch.setenv("REUNITE_TOLERANCE", str(TIGHT))
    summaries = []
    for argv in (["rematch", "--limit", "4"], ["rematch"], ["rematch"]):
        assert main(argv) == 0
        captured = capsys.readouterr()
        summaries.append(json.loads(captured.out))
        assert "re-matching:" in captured.err or summaries[-1]["cases"] == 0
    assert [(s["cases_matched"], s["remaining"]) for s in summaries] == [(4, 3), (3, 0), (0, 0)]
    assert sum(s["candidates_superseded"] for s in summaries) == 1
    assert len({s["rules"] for s in summaries}) == 1


def test_a_bad_limit_exits_4_with_one_line(workdir, capsys):
    assert main(["rematch", "--limit", "0"]) == 4
    assert capsys.readouterr().err == "error (invalid_field): --limit must be at least 1.\n"


def test_rematch_beside_a_running_server(tmp_path, finder, sample, database_url):
    with Reunite.open(settings_in(tmp_path, database_url=database_url), finder=finder) as service:
        ids = gallery(service, sample)
    server = Server(tmp_path, **store_env(database_url))
    try:
        api = f"{server.url}/api/v1"
        summary = json.loads(
            cli(tmp_path, "rematch", REUNITE_TOLERANCE=str(TIGHT), **store_env(database_url))
        )
        assert (summary["cases_matched"], summary["candidates_superseded"]) == (7, 1)
        listed = httpx2.get(f"{api}/cases/{ids['m_obama3']}/candidates", headers=server.auth)
        [candidate] = listed.json()
        assert [f["code"] for f in candidate["flags"]] == ["no_longer_proposed"]
        queue = httpx2.get(f"{api}/candidates", params={"limit": 1}, headers=server.auth).json()
        order = [c["id"] for c in queue["items"]]
        while queue["next_cursor"]:
            queue = httpx2.get(
                f"{api}/candidates",
                params={"limit": 1, "cursor": queue["next_cursor"]},
                headers=server.auth,
            ).json()
            order += [c["id"] for c in queue["items"]]
        assert order[-1] == candidate["id"] and len(order) == 2
    finally:
        server.stop()
