"""The label tool's accounts and front door attacked through the HTTP API (#32): accounts
changed by another process count at once and are never written over, sessions end at logout,
at a new password and with age, a spoofed X-Forwarded-For does not escape the login limit
while one person's typos lock out no one else, a Host header naming another site (DNS
rebinding) is refused and changes nothing, a GET changes nothing, and an accounts file
others can read is refused at start."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient
from test_accounts import logged_in, login, site  # noqa: F401 (the fixture)
from test_label import labelling_copy

from bearid.cli.label import _auth, accounts_file, proxy_options
from bearid.errors import BearIDError
from bearid.label.accounts import Accounts, RateLimit
from bearid.label.app import Labeler, create_app
from bearid.label.auth import SESSION_SECONDS, Auth, Hosts
from bearid.label.store import LabelStore

BASE = "http://label.test"


def csrf_of(page) -> str:
    return page.text.split("name='csrf' value='")[1].split("'")[0]


def join(client: TestClient, token: str, name: str, password: str):
    csrf = csrf_of(client.get(f"/invite?token={token}"))
    return client.post(
        "/invite", data={"csrf": csrf, "token": token, "name": name, "password": password}, follow_redirects=False
    )


# -- accounts changed from the CLI while the server runs --------------------------------------
def test_accounts_changed_by_another_process_count_at_once_and_are_never_written_over(site):  # noqa: F811
    labeler, auth, _ = site
    app = create_app(labeler, auth)
    other = Accounts.open(auth.accounts.path)  # what `bearid accounts` in another process holds

    other.add("wes", "volunteer", "wes's long password")
    assert login(TestClient(app, base_url=BASE), "wes", "wes's long password").status_code == 303

    vic, _ = logged_in(labeler, auth, "vic", "a volunteer's secret")
    other.add("vic", "volunteer", "vic's new password")  # a reset
    assert login(TestClient(app, base_url=BASE), "vic", "a volunteer's secret").status_code == 401
    assert vic.get("/api/info").status_code == 401  # the session from before the reset ended
    assert login(TestClient(app, base_url=BASE), "vic", "vic's new password").status_code == 303

    # An invitation accepted in the server while the other process added an account and an invitation.
    token = auth.accounts.invite("volunteer", by="anna")  # the server's Accounts has read the file: it is cached
    assert auth.accounts.invites
    other.add("xena", "curator", "xena's long password")
    later = other.invite("volunteer", by="xena")
    assert join(TestClient(app, base_url=BASE), token, "yuri", "yuri's long password").status_code == 303
    on_disk = Accounts.open(auth.accounts.path)
    assert {"anna", "vic", "wes", "xena", "yuri"} <= set(on_disk.accounts)
    assert len(on_disk.invites) == 1  # `later`, still open; `token`, used
    assert join(TestClient(app, base_url=BASE), later, "zoe", "zoe's long password").status_code == 303
    assert join(TestClient(app, base_url=BASE), token, "eve", "eve's long password").status_code == 400
    assert stat.S_IMODE(auth.accounts.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(auth.accounts.lock_path.stat().st_mode) == 0o600


def test_changes_from_many_processes_at_once_are_all_kept(splits, tmp_path):
    """The CLI's own function from several threads, each with its own Accounts (flock excludes
    them as it excludes processes), while the server accepts invitations."""
    from bearid.cli.accounts import add

    xml = labelling_copy(splits, tmp_path)
    path = accounts_file(xml)
    server = Accounts.open(path)
    server.add("anna", "curator", "a curator's secret")
    tokens = [server.invite("volunteer", by="anna") for _ in range(4)]
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            add(f"cli{n}", xml, "volunteer", f"password number {n}")
            Accounts.open(path).invite("volunteer", by=f"cli{n}")
            server.accept(tokens[n], f"joined{n}", f"password number {n}")
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    final = Accounts.open(path)
    assert set(final.accounts) == {"anna", *(f"cli{n}" for n in range(4)), *(f"joined{n}" for n in range(4))}
    assert sorted(i["by"] for i in final.invites.values()) == [f"cli{n}" for n in range(4)]


# -- sessions end ------------------------------------------------------------------------
def test_a_session_ends_at_logout_at_a_new_password_and_with_age(site, monkeypatch):  # noqa: F811
    labeler, auth, _ = site
    app = create_app(labeler, auth)

    vic, csrf = logged_in(labeler, auth, "vic", "a volunteer's secret")
    cookie = vic.cookies["bearid_session"]
    assert vic.post("/logout", headers={"X-CSRF-Token": csrf}, follow_redirects=False).status_code == 303
    replay = TestClient(app, base_url=BASE, cookies={"bearid_session": cookie})
    assert replay.get("/api/info").status_code == 401
    assert replay.get("/", follow_redirects=False).headers["location"] == "/login"

    anna, _ = logged_in(labeler, auth, "anna", "a curator's secret")
    assert anna.get("/api/info").status_code == 200
    Accounts.open(auth.accounts.path).add("anna", "curator", "anna's new secret")  # another process
    assert anna.get("/api/info").status_code == 401

    anna, _ = logged_in(labeler, auth, "anna", "anna's new secret")
    started = time.time()
    monkeypatch.setattr(auth, "clock", lambda: started + SESSION_SECONDS - 60)
    assert anna.get("/api/info").status_code == 200
    monkeypatch.setattr(auth, "clock", lambda: started + SESSION_SECONDS + 1)
    assert anna.get("/api/info").status_code == 401  # older than the expiry, whatever the cookie's own age


# -- the login limit -----------------------------------------------------------------------
@contextlib.contextmanager
def uvicorn_serving(app, **options):
    """`app` behind a real uvicorn on a free loopback port, with `options` as `bearid label` passes them."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


def spoofed_logins(url: str, n: int) -> list[int]:
    statuses = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(n):
            spoof = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
            csrf = csrf_of(client.get("/login", headers=spoof))
            form = {"csrf": csrf, "name": f"guess{i}", "password": "not the password"}
            statuses.append(client.post("/login", data=form, headers=spoof).status_code)
    return statuses


def test_a_spoofed_forwarded_for_does_not_escape_the_login_limit(site):  # noqa: F811
    labeler, auth, _ = site
    auth.limit = RateLimit()  # the server's: 5 a name, 20 an address, in 5 minutes
    with uvicorn_serving(create_app(labeler, auth), **proxy_options(None)) as url:  # `bearid label --https`
        statuses = spoofed_logins(url, 40)
    assert statuses[:20] == [401] * 20 and statuses[20:] == [429] * 20
    # A proxy that is trusted (--forwarded-allow-ips 127.0.0.1) is believed: its clients count apart.
    auth.limit = RateLimit()
    with uvicorn_serving(create_app(labeler, auth), **proxy_options("127.0.0.1")) as url:
        assert spoofed_logins(url, 25) == [401] * 25
    # Trusting some other proxy does not make this client one.
    auth.limit = RateLimit()
    with uvicorn_serving(create_app(labeler, auth), **proxy_options("10.1.2.3")) as url:
        assert spoofed_logins(url, 21)[-1] == 429


def test_one_persons_failed_logins_do_not_lock_out_the_curator(site):  # noqa: F811
    """Everyone behind one address, as behind a proxy whose forwarded address is not trusted."""
    labeler, auth, _ = site
    auth.limit = RateLimit()
    app = create_app(labeler, auth)
    vic = TestClient(app, base_url=BASE)
    for _ in range(5):
        assert login(vic, "vic", "mistyped password").status_code == 401
    assert login(vic, "vic", "a volunteer's secret").status_code == 429  # vic's own name: limited
    assert login(TestClient(app, base_url=BASE), "anna", "a curator's secret").status_code == 303


# -- DNS rebinding, and a GET that wrote ------------------------------------------------------
def test_a_request_for_another_host_name_is_refused_and_changes_nothing(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    store = LabelStore(xml)
    labeler = Labeler(store)
    client = TestClient(create_app(labeler, None, Hosts.serving("127.0.0.1")), base_url="http://127.0.0.1:8080")
    before, journal = xml.read_bytes(), store.journal.read_bytes() if store.journal.exists() else b""
    evil = {"Host": "evil.example:8080", "Origin": "http://evil.example:8080"}
    boxes = store.boxes(0)
    boxes[0]["label"] = "bf_999"
    put = client.put("/api/images/0", json={"boxes": boxes, "version": 0, "volunteer": "mallory"}, headers=evil)
    assert put.status_code == 400 and "host" in put.text.lower()
    ids = store.dataset.labels()
    merge = client.post("/api/bears/merge", json={"keep": ids[0], "gone": ids[1], "volunteer": "mallory"}, headers=evil)
    assert merge.status_code == 400
    assert client.get("/api/info", headers=evil).status_code == 400  # nor read
    assert xml.read_bytes() == before
    assert (store.journal.read_bytes() if store.journal.exists() else b"") == journal
    for host in ("127.0.0.1:8080", "localhost:8080", "[::1]:8080"):
        assert client.get("/api/info", headers={"Host": host}).status_code == 200, host
    store.close()


def test_the_names_a_server_answers_to():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from bearid.label.auth import check_host

    inner = Starlette(routes=[Route("/", lambda r: PlainTextResponse("ok"))])

    def allowed(hosts: Hosts, header: str) -> int:
        return TestClient(check_host(inner, hosts)).get("/", headers={"Host": header}).status_code

    proxied = Hosts.serving("127.0.0.1", ["label.example.org"])
    assert allowed(proxied, "label.example.org") == 200 and allowed(proxied, "Label.Example.org:443") == 200
    assert allowed(proxied, "evil.example") == 400 and allowed(proxied, "label.example.org.evil.example") == 400
    assert allowed(proxied, "192.168.1.5:8080") == 400  # bound to loopback: only its names
    network = Hosts.serving("0.0.0.0")
    assert allowed(network, "192.168.1.5:8080") == 200 and allowed(network, "[fe80::1]:8080") == 200
    assert allowed(network, socket.gethostname()) == 200
    assert allowed(network, "evil.example:8080") == 400 and allowed(network, "") == 400


def test_a_get_changes_nothing_and_moving_on_is_a_post(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    store = LabelStore(xml)
    labeler = Labeler(store)
    client = TestClient(create_app(labeler))
    journal = store.journal.read_bytes() if store.journal.exists() else None
    for after in ("", "0", "1", "2"):
        got = client.get("/api/next", params={"queue": "all", "volunteer": "alice", "after": after, "step": 1})
        assert got.status_code == 200
    assert (store.journal.read_bytes() if store.journal.exists() else None) == journal
    assert client.get("/api/info").json()["queues"][0]["todo"] == 4
    done = client.post("/api/review", json={"index": 0, "queue": "all", "volunteer": "alice"})
    assert done.status_code == 200 and done.json()["todo"] == 3
    assert '"kind": "review"' in store.journal.read_text()
    assert client.get("/api/next", params={"queue": "all", "volunteer": "alice", "after": 0}).json()["index"] == 1
    assert client.post("/api/review", json={"index": 9, "queue": "all", "volunteer": "alice"}).status_code == 400
    assert client.post("/api/review", json={"index": 1, "queue": "nope", "volunteer": "alice"}).status_code == 400
    assert client.post("/api/review", json={"index": 1, "queue": "all", "volunteer": "<x>"}).status_code == 400
    assert (
        client.post(
            "/api/review", json={"index": 1, "queue": "all"}, headers={"Origin": "http://evil.example"}
        ).status_code
        == 403
    )
    store.close()


# -- the accounts file's mode, and the CLI ----------------------------------------------------
def test_an_accounts_file_others_can_read_is_refused_at_start(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    path = accounts_file(xml)
    Accounts.open(path).add("anna", "curator", "a curator's secret")
    assert isinstance(_auth(path, "127.0.0.1", False, False), Auth)
    path.chmod(0o644)
    with pytest.raises(BearIDError, match=f"chmod 600 {path}"):
        _auth(path, "127.0.0.1", False, False)
    assert _auth(path, "127.0.0.1", True, False) is None  # --no-auth: the file is not used
    done = subprocess.run(
        [sys.executable, "-c", "from bearid.cli import main; main()", "label", str(xml)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 2 and f"chmod 600 {path}" in done.stderr, done.stderr


def test_accounts_add_checks_the_role_before_asking_for_the_password(splits, tmp_path):
    from typer.testing import CliRunner

    from bearid.cli.accounts import app

    xml = labelling_copy(splits, tmp_path)
    result = CliRunner().invoke(app, ["add", "bob", "--xml", str(xml), "--role", "boss"], input="")
    assert result.exit_code == 2 and "'boss' is not one of 'volunteer'," in result.output  # -h lists them
    assert "Password" not in result.output and not accounts_file(xml).exists()
    ok = CliRunner().invoke(app, ["add", "bob", "--xml", str(xml), "--role", "curator"], input="bob's password\n" * 2)
    assert ok.exit_code == 0 and ok.output.count("Password") == 1 and "Repeat" in ok.output
    assert Accounts.open(accounts_file(xml)).login("bob", "bob's password")


def test_the_cli_refuses_other_host_names(splits, tmp_path):
    xml = labelling_copy(splits, tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bearid = [sys.executable, "-c", "from bearid.cli import main; main()", "label"]
    server = subprocess.Popen(
        [*bearid, str(xml), "--port", str(port), "--allowed-host", "label.example.org"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/info"
    try:
        deadline, up = time.monotonic() + 90, None
        while up is None and time.monotonic() < deadline and server.poll() is None:
            try:
                up = httpx.get(url, timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert up is not None and up.status_code == 200
        assert httpx.get(url, headers={"Host": "label.example.org"}).status_code == 200
        assert httpx.get(url, headers={"Host": f"evil.example:{port}"}).status_code == 400
    finally:
        server.terminate()
        server.wait(10)


def test_the_page_records_a_review_with_a_post_when_moving_on(splits, tmp_path):
    """In Chromium, logged in: Next records the photo as reviewed (POST /api/review, with the
    CSRF token) and shows the next one; loading photos writes nothing."""
    from playwright.sync_api import sync_playwright
    from test_label_browser import CHROMIUM_FLAGS, chromium, serving

    executable = chromium()
    xml = labelling_copy(splits, tmp_path, photos=3)
    store = LabelStore(xml)
    accounts = Accounts.open(accounts_file(xml))
    accounts.add("vic", "volunteer", "a volunteer's secret")
    app = create_app(Labeler(store), Auth(accounts), Hosts.serving("127.0.0.1"))
    try:
        with serving(app) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(f"{url}/login")
            page.fill("input[name=name]", "vic")
            page.fill("input[name=password]", "a volunteer's secret")
            page.click("button")
            page.wait_for_selector("body[data-ready='0']")
            assert not store.journal.exists() or "review" not in store.journal.read_text()
            page.click("#next")
            page.wait_for_selector("body[data-ready='1']")
            browser.close()
        reviews = [line for line in store.journal.read_text().splitlines() if '"review"' in line]
        assert len(reviews) == 1 and '"vic"' in reviews[0] and store.reviewed == {"all": {0}}
    finally:
        store.close()
