"""The label tool's front door when volunteers have accounts (bearid.label.accounts): login
and invitation pages, signed session cookies, CSRF and cross-site checks, roles.

Every request but the login and invitation pages needs a session. A request that changes
something (POST, PUT, DELETE) must come from this site (its Origin, when the browser sends
one, is this server's) and carry the session's CSRF token in `X-CSRF-Token` (the forms carry
it as a field). Failed logins are rate-limited per address and per name.
"""

from __future__ import annotations

import html
import secrets
from dataclasses import dataclass, field

from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bearid.errors import BearIDError
from bearid.label.accounts import Accounts, RateLimit

OPEN = ("/login", "/invite", "/static/")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
SESSION_SECONDS = 12 * 3600


@dataclass
class Auth:
    accounts: Accounts
    https: bool = False  # cookies marked Secure (serve behind TLS: docs/labelling.md)
    limit: RateLimit = field(default_factory=RateLimit)


def user_of(request: Request) -> dict | None:
    """{"name", "role"} of the logged-in account, or None."""
    return request.scope.get("bearid.user")


def protect(app: ASGIApp, auth: Auth | None) -> ASGIApp:
    """`app` refusing cross-site changes; with `auth`, also behind sessions and CSRF tokens."""

    async def check(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        request = Request(scope)
        refuse = None
        if request.method in UNSAFE:
            origin = request.headers.get("origin")
            if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
                refuse = JSONResponse({"error": "cross-site request refused"}, 403)
        if auth is not None and refuse is None:
            refuse = _session_check(request, scope)
        if refuse is not None:
            return await refuse(scope, receive, send)
        return await app(scope, receive, send)

    def _session_check(request: Request, scope: Scope) -> Response | None:
        session = scope["session"]
        session.setdefault("csrf", secrets.token_urlsafe(24))
        name = session.get("user")
        account = auth.accounts.accounts.get(name) if name else None
        if account:
            scope["bearid.user"] = {"name": account.name, "role": account.role}
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
        return check
    return SessionMiddleware(
        check,
        secret_key=auth.accounts.secret,
        session_cookie="bearid_session",
        max_age=SESSION_SECONDS,
        same_site="strict",
        https_only=auth.https,
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
        address = request.client.host if request.client else "?"
        wait = auth.limit.wait(f"ip:{address}", f"name:{name}")
        if wait:
            body = _login_form(session["csrf"], f"Too many failed logins; try again in {int(wait) + 1} s.")
            return _page("Log in", body, 429, {"Retry-After": str(int(wait) + 1)})
        account = auth.accounts.login(name, password)
        if account is None:
            auth.limit.failed(f"ip:{address}", f"name:{name}")
            return _page("Log in", _login_form(session["csrf"], "Wrong name or password."), 401)
        session.clear()  # a new session at login: no fixation
        session.update(user=account.name, csrf=secrets.token_urlsafe(24))
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
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
            account = auth.accounts.accept(token, str(form.get("name", "")), str(form.get("password", "")))
        except BearIDError as exc:
            return _page("Join", _invite_form(session["csrf"], token, str(exc)), 400)
        session.clear()
        session.update(user=account.name, csrf=secrets.token_urlsafe(24))
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
