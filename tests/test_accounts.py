"""Volunteers with accounts: the label tool refuses what is not logged in, cross-site, or
without the session's CSRF token; a volunteer cannot do a curator's action; login attempts
are rate-limited; every journal entry names the account; and it refuses to serve on the
network without accounts unless told --no-auth."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
from starlette.testclient import TestClient
from test_matching import make_scored

from bearid.errors import BearIDError
from bearid.label.accounts import Accounts, RateLimit
from bearid.label.app import Labeler, create_app
from bearid.label.auth import Auth
from bearid.label.store import LabelStore


@pytest.fixture
def site(splits, tmp_path):
    xml = make_scored(splits, tmp_path)
    accounts = Accounts.open(tmp_path / "accounts.json")
    accounts.add("anna", "curator", "a curator's secret")
    accounts.add("vic", "volunteer", "a volunteer's secret")
    store = LabelStore(xml)
    labeler = Labeler(store)
    clock = [0.0]
    auth = Auth(accounts, limit=RateLimit(attempts=3, window=60, clock=lambda: clock[0]))
    yield labeler, auth, clock
    store.close()


def login(client: TestClient, name: str, password: str):
    page = client.get("/login")
    csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
    return client.post("/login", data={"csrf": csrf, "name": name, "password": password}, follow_redirects=False)


def logged_in(labeler, auth, name: str, password: str) -> tuple[TestClient, str]:
    client = TestClient(create_app(labeler, auth), base_url="http://label.test")
    assert login(client, name, password).status_code == 303
    return client, client.get("/api/me").json()["csrf"]


def test_accounts_are_stored_hashed_for_their_owner_only(tmp_path):
    accounts = Accounts.open(tmp_path / "a" / "accounts.json")
    accounts.add("anna", "curator", "correct horse battery")
    text = (tmp_path / "a" / "accounts.json").read_text()
    assert "correct horse battery" not in text and json.loads(text)["accounts"][0]["password"]
    assert stat.S_IMODE((tmp_path / "a" / "accounts.json").stat().st_mode) == 0o600
    again = Accounts.open(tmp_path / "a" / "accounts.json")
    assert (
        again.login("anna", "correct horse battery") and not again.login("anna", "wrong") and not again.login("x", "y")
    )
    with pytest.raises(BearIDError, match="10 characters"):
        again.add("bob", "volunteer", "short")
    with pytest.raises(BearIDError, match="role"):
        again.add("bob", "admin", "long enough password")


def test_the_api_refuses_the_unauthenticated_and_the_cross_site(site):
    labeler, auth, _ = site
    client = TestClient(create_app(labeler, auth), base_url="http://label.test")
    assert client.get("/api/info").status_code == 401
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    assert client.put("/api/images/0", json={"boxes": [], "version": 0}).status_code in (401, 403)
    client, csrf = logged_in(labeler, auth, "vic", "a volunteer's secret")
    assert client.get("/api/info").status_code == 200
    boxes, version = labeler.store.boxes(0), labeler.store.versions[0]
    no_token = client.put("/api/images/0", json={"boxes": boxes, "version": version})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    cross = client.put(
        "/api/images/0",
        json={"boxes": boxes, "version": version},
        headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
    )
    assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
    boxes[0]["label"] = labeler.store.dataset.labels()[0]
    ok = client.put("/api/images/0", json={"boxes": boxes, "version": version, "volunteer": "mallory"},
                    headers={"X-CSRF-Token": csrf, "Origin": "http://label.test"})  # fmt: skip
    assert ok.status_code == 200, ok.text
    assert labeler.store.history(0)[-1]["volunteer"] == "vic"  # the account, not what the page claimed


def test_a_volunteer_cannot_do_a_curators_action(site):
    labeler, auth, _ = site
    i = labeler.members("match")[0]
    face = labeler.match(i)["faces"][0]["face"]
    vic, vcsrf = logged_in(labeler, auth, "vic", "a volunteer's secret")
    new = {"face": face, "decision": "new", "version": labeler.store.versions[i]}
    refused = vic.post(f"/api/match/{i}", json=new, headers={"X-CSRF-Token": vcsrf})
    assert refused.status_code == 403 and "curator" in refused.json()["error"]
    ids = labeler.store.dataset.labels()
    merge = vic.post("/api/bears/merge", json={"keep": ids[0], "gone": ids[1]}, headers={"X-CSRF-Token": vcsrf})
    assert merge.status_code == 403 and set(labeler.store.dataset.labels()) == set(ids)
    same = {"face": face, "decision": "same", "bear_id": ids[0], "version": labeler.store.versions[i]}
    assert vic.post(f"/api/match/{i}", json=same, headers={"X-CSRF-Token": vcsrf}).status_code == 200  # proposes
    anna, acsrf = logged_in(labeler, auth, "anna", "a curator's secret")
    j = labeler.members("match")[0]
    face = labeler.match(j)["faces"][0]["face"]
    named = anna.post(f"/api/match/{j}", json={"face": face, "decision": "new", "version": labeler.store.versions[j]},
                      headers={"X-CSRF-Token": acsrf})  # fmt: skip
    assert named.status_code == 200 and named.json()["bear_id"]
    merged = anna.post("/api/bears/merge", json={"keep": ids[0], "gone": ids[1]}, headers={"X-CSRF-Token": acsrf})
    assert merged.status_code == 200 and merged.json()["kind"] == "merge"
    assert ids[1] not in labeler.store.dataset.labels()
    matched = [e["match"]["matched_by"] for e in labeler.store.history() if "match" in e]
    assert matched == ["vic", "anna"]


def test_login_attempts_are_rate_limited(site):
    labeler, auth, clock = site
    client = TestClient(create_app(labeler, auth), base_url="http://label.test")
    for _ in range(3):
        assert login(client, "anna", "wrong password").status_code == 401
    limited = login(client, "anna", "a curator's secret")  # right, but too soon
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    clock[0] += 61
    assert login(client, "anna", "a curator's secret").status_code == 303


def test_an_invitation_link_makes_an_account_once(site):
    labeler, auth, _ = site
    token = auth.accounts.invite("volunteer", by="anna")
    client = TestClient(create_app(labeler, auth), base_url="http://label.test")
    page = client.get(f"/invite?token={token}")
    csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
    form = {"csrf": csrf, "token": token, "name": "wes", "password": "wes's long password"}
    joined = client.post("/invite", data=form, follow_redirects=False)
    assert joined.status_code == 303 and client.get("/api/me").json()["name"] == "wes"
    other = TestClient(create_app(labeler, auth), base_url="http://label.test")
    page = other.get(f"/invite?token={token}")
    csrf = page.text.split("name='csrf' value='")[1].split("'")[0]
    again = other.post("/invite", data={"csrf": csrf, "token": token, "name": "eve", "password": "eve's long password"})
    assert again.status_code == 400 and "not valid" in again.text
    assert "eve" not in auth.accounts.accounts and auth.accounts.accounts["wes"].role == "volunteer"


def test_the_label_tool_will_not_serve_the_network_without_accounts(splits, tmp_path):
    xml = make_scored(splits, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", "label", str(xml), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 2 and "no accounts" in done.stderr and "--no-auth" in done.stderr, done.stderr
