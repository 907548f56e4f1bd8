"""The label tool's front door when volunteers have accounts (bearid.label.accounts): login
and invitation pages, signed session cookies, CSRF and cross-site checks, roles; and, with
or without accounts, the Host check that stops DNS rebinding.

Every request but the login and invitation pages needs a session. A request that changes
something (POST, PUT, DELETE) must come from this site (its Origin, when the browser sends
one, is this server's) and carry the session's CSRF token in `X-CSRF-Token` (the forms carry
it as a field). Failed logins are rate-limited per name and, with a higher bound, per
address (RateLimit says why).

A session is a signed cookie holding the account's name, the account's session generation
when it logged in, and the time it did. It is honoured only while the account exists with
that generation (in accounts.json, so `bearid accounts` in another process counts: a new
password bumps it, as does logging out, which so ends the account's sessions everywhere)
and for SESSION_SECONDS after the login, counted here, not by the browser.

Only the names the server was started for may be in the Host header (`Hosts`): a page on
another site whose name an attacker points at 127.0.0.1 (DNS rebinding) is then refused,
though its requests are "same-origin" to the browser.
"""

from __future__ import annotations

import html
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bearid.errors import BearIDError
from bearid.label.accounts import Accounts, RateLimit

OPEN = ("/login", "/invite", "/static/")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
SESSION_SECONDS = 12 * 3600
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")


@dataclass
class Auth:
    accounts: Accounts
    https: bool = False  # cookies marked Secure (serve behind TLS: docs/labelling.md)
    limit: RateLimit = field(default_factory=RateLimit)
    clock: Callable[[], float] = time.time  # a session's age: seconds since its login


@dataclass(frozen=True)
class Hosts:
    """The names a request's Host header may carry. `any_address`: also any IP address
    written as one (a server on 0.0.0.0 is reached by the addresses of its interfaces;
    DNS rebinding needs a name the attacker controls, never an IP literal)."""

    names: tuple[str, ...]
    any_address: bool = False

    @classmethod
    def serving(cls, host: str, extra: Iterable[str] = ()) -> Hosts:
        """For a server listening on `host`: the loopback names, `host` itself, and `extra`
        (a reverse proxy's public name, `--allowed-host`); on a wildcard address, also this
        machine's name and any IP address."""
        names = [*LOOPBACK, host, *extra]
        wildcard = host in WILDCARD
        if wildcard:
            names.append(socket.gethostname())
        found: list[str] = []
        for name in names:
            name = name.strip().lower()
            if name and name not in WILDCARD:
                found.append(f"[{name}]" if ":" in name and not name.startswith("[") else name)  # IPv6, as sent
        return cls(tuple(dict.fromkeys(found)), wildcard)


def user_of(request: Request) -> dict | None:
    """{"name", "role"} of the logged-in account, or None."""
    return request.scope.get("bearid.user")


def _ip_literal(host_header: str) -> bool:
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.split(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def check_host(app: ASGIApp, hosts: Hosts) -> ASGIApp:
    """`app` answering only requests whose Host is one of `hosts` (else 400, Starlette's
    TrustedHostMiddleware)."""
    trusted = TrustedHostMiddleware(app, allowed_hosts=list(hosts.names), www_redirect=False)
    if not hosts.any_address:
        return trusted

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if _ip_literal(host):
                return await app(scope, receive, send)
        return await trusted(scope, receive, send)

    return check


def protect(app: ASGIApp, auth: Auth | None, hosts: Hosts | None = None) -> ASGIApp:
    """`app` refusing cross-site changes; with `auth`, also behind sessions and CSRF tokens;
    with `hosts`, only for those Host names (`bearid label` always gives them)."""

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        request = Request(scope)
        refuse = None
        if request.method in UNSAFE:
            origin = request.headers.get("origin")
            netloc = request.url.netloc
            # Behind a TLS proxy (--https) the page is https://NAME whether or not the proxy's
            # X-Forwarded-Proto is trusted.
            ours = {f"{request.url.scheme}://{netloc}", *([f"https://{netloc}"] if auth and auth.https else [])}
            if origin and origin not in ours:
                refuse = JSONResponse({"error": "cross-site request refused"}, 403)
        if auth is not None and refuse is None:
            refuse = _session_check(request, scope)
        if refuse is not None:
            return await refuse(scope, receive, send)
        return await app(scope, receive, send)

    def _session_check(request: Request, scope: Scope) -> Response | None:
        session = scope["session"]
        session.setdefault("csrf", secrets.token_urlsafe(24))
        account = current(auth, session)
        if account:
            scope["bearid.user"] = {"name": account.name, "role": account.role}
        elif "user" in session:  # logged out elsewhere, a new password, or too old: forget it
            for key in ("user", "generation", "since"):
                session.pop(key, None)
        path = request.url.path
        if (
            request.method in UNSAFE
            and not path.startswith(OPEN)
            and request.headers.get("x-csrf-token") != session["csrf"]
        ):
            return JSONResponse({"error": "missing or wrong CSRF token; reload the page"}, 403)
        if account is None and not path.startswith(OPEN):
            if path.startswith("/api/"):
                return JSONResponse({"error": "log in first"}, 401)
            return RedirectResponse("/login", 303)
        return None

    if auth is None:
        guarded = check
    else:
        guarded = SessionMiddleware(
            check,
            secret_key=auth.accounts.secret,
            session_cookie="bearid_session",
            max_age=SESSION_SECONDS,
            same_site="strict",
            https_only=auth.https,
        )
    return check_host(guarded, hosts) if hosts is not None else guarded


def current(auth: Auth, session: dict):
    """The session's account, if the session is still good: the account exists now, in the
    generation the session was made in, and logged in less than SESSION_SECONDS ago."""
    name = session.get("user")
    account = auth.accounts.accounts.get(name) if isinstance(name, str) else None
    if account is None or session.get("generation") != account.generation:
        return None
    since = session.get("since")
    age = auth.clock() - since if isinstance(since, int | float) else None
    if age is None or not -60 <= age < SESSION_SECONDS:  # a minute's grace for a clock set back
        return None
    return account


def _start_session(auth: Auth, session: dict, account) -> None:
    session.clear()  # a new session at login: no fixation
    session.update(
        user=account.name, generation=account.generation, since=int(auth.clock()), csrf=secrets.token_urlsafe(24)
    )


def routes(auth: Auth) -> list[Route]:
    async def login(request: Request) -> Response:
        session = request.session
        if request.method == "GET":
            return _page("Log in", _login_form(session["csrf"]))
        form = await request.form()
        if form.get("csrf") != session["csrf"]:
            return _page("Log in", _login_form(session["csrf"], "The form expired; try again."), 403)
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        address = request.client.host if request.client else "?"  # a proxy's client only if --forwarded-allow-ips
        wait = auth.limit.wait(address, name)
        if wait:
            body = _login_form(session["csrf"], f"Too many failed logins; try again in {int(wait) + 1} s.")
            return _page("Log in", body, 429, {"Retry-After": str(int(wait) + 1)})
        account = await run_in_threadpool(auth.accounts.login, name, password)  # scrypt: off the event loop
        if account is None:
            auth.limit.failed(address, name)
            return _page("Log in", _login_form(session["csrf"], "Wrong name or password."), 401)
        _start_session(auth, session, account)
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        user = user_of(request)
        if user:
            await run_in_threadpool(auth.accounts.end_sessions, user["name"])  # this cookie, replayed, is refused
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def invite(request: Request) -> Response:
        session = request.session
        if request.method == "GET":
            return _page("Join", _invite_form(session["csrf"], request.query_params.get("token", "")))
        form = await request.form()
        token = str(form.get("token", ""))
        if form.get("csrf") != session["csrf"]:
            return _page("Join", _invite_form(session["csrf"], token, "The form expired; try again."), 403)
        try:
            name, password = str(form.get("name", "")), str(form.get("password", ""))
            account = await run_in_threadpool(auth.accounts.accept, token, name, password)
        except BearIDError as exc:
            return _page("Join", _invite_form(session["csrf"], token, str(exc)), 400)
        _start_session(auth, session, account)
        return RedirectResponse("/", 303)

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/invite", invite, methods=["GET", "POST"]),
    ]


def _login_form(csrf: str, message: str = "") -> str:
    return (
        f"<p class='error'>{html.escape(message)}</p>"
        "<form method='post' action='/login'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        "<label>Name <input name='name' autocomplete='username' required></label>"
        "<label>Password <input name='password' type='password' autocomplete='current-password' required></label>"
        "<button>Log in</button></form>"
    )


def _invite_form(csrf: str, token: str, message: str = "") -> str:
    return (
        f"<p class='error'>{html.escape(message)}</p>"
        "<form method='post' action='/invite'>"
        f"<input type='hidden' name='csrf' value='{html.escape(csrf)}'>"
        f"<input type='hidden' name='token' value='{html.escape(token)}'>"
        "<label>Your name <input name='name' autocomplete='username' required></label>"
        "<label>A password (10 characters or more) "
        "<input name='password' type='password' autocomplete='new-password' minlength='10' required></label>"
        "<button>Join</button></form>"
    )


def _page(title: str, body: str, status: int = 200, headers: dict | None = None) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>BearID label: "
        f"{title}</title><link rel='stylesheet' href='/static/label.css'></head>"
        f"<body class='door'><main><h1>BearID label</h1>{body}</main></body></html>",
        status,
        headers,
    )
