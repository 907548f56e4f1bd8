"""Volunteers with accounts, for a `bearid label` that others reach over the network.

Two roles: a volunteer labels and proposes matches; a curator also names new bears, merges
and splits. Accounts live in one JSON file (default beside the XML's journal,
`.bearid-label/accounts.json`, written atomically, mode 0600): names, roles, passwords
hashed with scrypt (Python's hashlib: a memory-hard KDF, no extra dependency), invitations
(only their hash is kept) and the key that signs session cookies.

`guard` is the ASGI middleware in front of the app: sessions in signed cookies (Starlette's
SessionMiddleware: HttpOnly, SameSite=Strict, Secure behind TLS), a CSRF token required on
every request that changes something and cross-site requests refused, and login attempts
rate-limited per address and name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bearid.errors import BearIDError
from bearid.fsio import atomic_path
from bearid.label.store import check_volunteer

ROLES = ("volunteer", "curator")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def _hash(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT).hex()


@dataclass
class Account:
    name: str
    role: str
    salt: str = ""
    password: str = ""  # scrypt hash, hex
    created: str = ""
    created_by: str = ""

    def check(self, password: str) -> bool:
        return bool(self.password) and hmac.compare_digest(self.password, _hash(password, bytes.fromhex(self.salt)))


@dataclass
class Accounts:
    path: Path
    accounts: dict[str, Account] = field(default_factory=dict)
    invites: dict[str, dict] = field(default_factory=dict)  # sha256(token) -> role, expires, by
    secret: str = ""

    @classmethod
    def open(cls, path: Path) -> Accounts:
        path = Path(path)
        if not path.exists():
            return cls(path, secret=secrets.token_hex(32))
        try:
            data = json.loads(path.read_text())
            accounts = {a["name"]: Account(**a) for a in data["accounts"]}
            return cls(path, accounts, data.get("invites", {}), data["secret"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BearIDError(f"{path}: not a BearID accounts file ({exc})") from None

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"accounts": [asdict(a) for a in self.accounts.values()], "invites": self.invites, "secret": self.secret}
        with atomic_path(self.path) as tmp:
            tmp.chmod(0o600)  # password hashes and the cookie key: for this account only, whatever the umask
            tmp.write_text(json.dumps(data, indent=1))

    def add(self, name: str, role: str, password: str, by: str = "") -> Account:
        name = check_volunteer(name)
        if role not in ROLES:
            raise BearIDError(f"role {role!r}: one of {', '.join(ROLES)}")
        if len(password) < 10:
            raise BearIDError("a password needs at least 10 characters")
        salt = secrets.token_bytes(16)
        self.accounts[name] = Account(name, role, salt.hex(), _hash(password, salt), _now(), by)
        self.save()
        return self.accounts[name]

    def invite(self, role: str, by: str, days: float = 7) -> str:
        """A one-time token for a link: who opens it chooses a name and password."""
        if role not in ROLES:
            raise BearIDError(f"role {role!r}: one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(24)
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat(timespec="seconds")
        self.invites[_digest(token)] = {"role": role, "expires": expires, "by": by}
        self.save()
        return token

    def accept(self, token: str, name: str, password: str) -> Account:
        invite = self.invites.get(_digest(token))
        if not invite or invite["expires"] < dt.datetime.now(dt.UTC).isoformat(timespec="seconds"):
            raise BearIDError("this invitation is not valid (used, expired or mistyped)")
        if check_volunteer(name) in self.accounts:
            raise BearIDError(f"there is already an account {name!r}")
        del self.invites[_digest(token)]
        return self.add(name, invite["role"], password, by=invite["by"])

    def login(self, name: str, password: str) -> Account | None:
        account = self.accounts.get((name or "").strip())
        if account is None:
            _hash(password, b"0" * 16)  # the same work whether or not the name exists
            return None
        return account if account.check(password) else None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RateLimit:
    """At most `attempts` failed logins per address and per name in `window` seconds."""

    def __init__(self, attempts: int = 5, window: float = 300, clock=time.monotonic):
        self.attempts, self.window, self.clock = attempts, window, clock
        self._failed: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def wait(self, *keys: str) -> float:
        """Seconds until another attempt is allowed (0: now)."""
        now = self.clock()
        with self._lock:
            longest = 0.0
            for key in keys:
                q = self._failed[key]
                while q and q[0] <= now - self.window:
                    q.popleft()
                if len(q) >= self.attempts:
                    longest = max(longest, q[0] + self.window - now)
            return longest

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failed[key].append(self.clock())
