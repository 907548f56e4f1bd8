"""Volunteers with accounts, for a `bearid label` that others reach over the network.

Two roles: a volunteer labels and proposes matches; a curator also names new bears, merges
and splits. Accounts live in one JSON file (default beside the XML's journal,
`.bearid-label/accounts.json`, mode 0600): names, roles, passwords hashed with scrypt
(Python's hashlib: a memory-hard KDF, no extra dependency), each account's session
generation (bumped by a logout or a new password: older sessions end), invitations (only
their hash is kept) and the key that signs session cookies.

The file is shared: `bearid accounts` changes it while a server runs, and the server
changes it too (an invitation accepted, a logout). So it is never kept in memory as the
truth: every look reads it again (a few kilobytes; parsed again only when its bytes
changed), and every change is a read-modify-write of the file as it is now, under an
exclusive `flock` on `accounts.json.lock` beside it, written atomically (a temporary file
renamed over it). A change made by another process is seen at the next request and never
written over.

`bearid.label.auth` is the front door that uses them: sessions in signed cookies, a CSRF
token on every change, cross-site requests refused, login attempts rate-limited (RateLimit).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
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
    generation: int = 0  # a session carries the generation it was made in; logout or a new password bumps it

    def check(self, password: str) -> bool:
        return bool(self.password) and hmac.compare_digest(self.password, _hash(password, bytes.fromhex(self.salt)))


@dataclass
class _State:
    accounts: dict[str, Account] = field(default_factory=dict)
    invites: dict[str, dict] = field(default_factory=dict)  # sha256(token) -> role, expires, by
    secret: str = ""


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BearIDError(f"role {role!r}: one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    if len(password) < 10:
        raise BearIDError("a password needs at least 10 characters")
    return password


def check_private(path: Path) -> Path:
    """`path`, if only its owner may read or write it (as ssh insists for a private key)."""
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077:
        raise BearIDError(
            f"{path} can be read or changed by others (mode {mode:04o}); it holds password hashes and the key "
            f"that signs sessions. Make it private and start again: chmod 600 {path}"
        )
    return Path(path)


class Accounts:
    """The accounts file, read fresh at every look and changed under a lock (module docstring).

    `accounts`, `invites` and `secret` are what the file says now. The signing key of a file
    that does not exist yet is made here and written with the first change."""

    def __init__(self, path: Path, secret: str = ""):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._cache: tuple[bytes | None, _State] = (None, _State(secret=secret))
        self._mutex = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Accounts:
        """The accounts in `path` (none yet if it does not exist); a file that is not an
        accounts file is a BearIDError."""
        found = cls(path, secret=secrets.token_hex(32))
        found._read(strict=True)
        return found

    @property
    def accounts(self) -> dict[str, Account]:
        return self._read().accounts

    @property
    def invites(self) -> dict[str, dict]:
        return self._read().invites

    @property
    def secret(self) -> str:
        return self._read().secret

    # -- changes: each a read-modify-write under the lock -----------------------------------
    def add(self, name: str, role: str, password: str, by: str = "") -> Account:
        """A new account, or an existing one's role and password set again (its sessions end)."""
        name, role, password = check_volunteer(name), check_role(role), check_password(password)
        salt = secrets.token_bytes(16)
        hashed = _hash(password, salt)  # the slow part, outside the lock
        with self._changing() as state:
            return self._put(state, name, role, salt, hashed, by)

    def invite(self, role: str, by: str, days: float = 7) -> str:
        """A one-time token for a link: who opens it chooses a name and password."""
        check_role(role)
        token = secrets.token_urlsafe(24)
        expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat(timespec="seconds")
        with self._changing() as state:
            state.invites[_digest(token)] = {"role": role, "expires": expires, "by": by}
        return token

    def accept(self, token: str, name: str, password: str) -> Account:
        name, password = check_volunteer(name), check_password(password)
        salt = secrets.token_bytes(16)
        hashed = _hash(password, salt)
        with self._changing() as state:
            invite = state.invites.get(_digest(token))
            if not invite or invite["expires"] < _now():
                raise BearIDError("this invitation is not valid (used, expired or mistyped)")
            if name in state.accounts:
                raise BearIDError(f"there is already an account {name!r}")
            del state.invites[_digest(token)]
            return self._put(state, name, invite["role"], salt, hashed, invite["by"])

    def end_sessions(self, name: str) -> None:
        """Every session of account `name` ends (a logout: on every device)."""
        with self._changing() as state:
            if name in state.accounts:
                state.accounts[name].generation += 1

    def login(self, name: str, password: str) -> Account | None:
        account = self.accounts.get((name or "").strip())
        if account is None:
            _hash(password, b"0" * 16)  # the same work whether or not the name exists
            return None
        return account if account.check(password) else None

    # -- inside -----------------------------------------------------------------------------
    @staticmethod
    def _put(state: _State, name: str, role: str, salt: bytes, hashed: str, by: str) -> Account:
        old = state.accounts.get(name)
        generation = old.generation + 1 if old else 0  # a new password ends the sessions made with the old
        state.accounts[name] = Account(name, role, salt.hex(), hashed, _now(), by, generation)
        return state.accounts[name]

    def _read(self, strict: bool = False, fresh: bool = False) -> _State:
        """What the file says now. A file that cannot be read or parsed is a BearIDError when
        `strict` (opening it, or about to change it); a server already running keeps the last
        good reading rather than fail every request."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raw = None
        except OSError as exc:
            if strict:
                raise BearIDError(f"{self.path}: cannot be read ({exc})") from None
            return self._cache[1]
        with self._mutex:
            cached_raw, cached = self._cache
            if raw is not None and raw == cached_raw and not fresh:
                return cached
            if raw is None:
                state = _State(secret=cached.secret)  # no file (yet): no accounts, this process's key
            else:
                try:
                    data = json.loads(raw)
                    state = _State(
                        {a["name"]: Account(**a) for a in data["accounts"]},
                        dict(data.get("invites", {})),
                        data["secret"],
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    if strict:
                        raise BearIDError(f"{self.path}: not a BearID accounts file ({exc})") from None
                    return cached
            self._cache = (raw, state)
            return state

    @contextlib.contextmanager
    def _changing(self) -> Iterator[_State]:
        """The file's state now, to change in place; written back atomically (mode 0600) when
        the block ends without an error, all under the lock file's exclusive flock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # other processes and this one's other threads wait here
            state = self._read(strict=True, fresh=True)  # a copy of its own: a failed change leaves no trace
            yield state
            now = _now()
            state.invites = {k: v for k, v in state.invites.items() if v["expires"] >= now}  # expired: gone
            data = {
                "accounts": [asdict(a) for a in state.accounts.values()],
                "invites": state.invites,
                "secret": state.secret,
            }
            raw = json.dumps(data, indent=1).encode()
            with atomic_path(self.path) as tmp:
                tmp.chmod(0o600)  # password hashes and the cookie key: for this account only, whatever the umask
                tmp.write_bytes(raw)
            with self._mutex:
                self._cache = (raw, state)
        finally:
            os.close(fd)  # and the lock with it


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RateLimit:
    """Failed logins in the last `window` seconds: at most `attempts` per name, and at most
    `per_address` (default four times `attempts`) per client address; a login is refused
    while either is full.

    The two bounds guard different things, as in the usual throttles (OWASP's
    authentication cheat sheet: lock per account and throttle per source; Rack::Attack's
    `logins/email` and `logins/ip`): the per-name bound stops guessing one account's password
    from many addresses; the per-address bound stops one client from trying passwords on many
    names. The address bound is several times the name bound so that one person mistyping
    their own password locks out only that name, even where many volunteers share one
    address (a NAT, a proxy whose forwarded address is not trusted): the curator still logs
    in, until that address has failed `per_address` times in the window.
    """

    def __init__(self, attempts: int = 5, window: float = 300, clock=time.monotonic, per_address: int | None = None):
        self.attempts, self.window, self.clock = attempts, window, clock
        self.per_address = per_address if per_address is not None else 4 * attempts
        self._failed: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _bounds(self, address: str, name: str) -> dict[str, int]:
        return {f"ip:{address}": self.per_address, f"name:{name}": self.attempts}

    def wait(self, address: str, name: str) -> float:
        """Seconds until `name` may try again from `address` (0: now)."""
        now = self.clock()
        with self._lock:
            longest = 0.0
            for key, bound in self._bounds(address, name).items():
                q = self._failed.get(key)
                if q is None:
                    continue
                while q and q[0] <= now - self.window:
                    q.popleft()
                if not q:
                    del self._failed[key]  # a forgotten name takes no memory
                elif len(q) >= bound:
                    longest = max(longest, q[-bound] + self.window - now)
            return longest

    def failed(self, address: str, name: str) -> None:
        with self._lock:
            for key in self._bounds(address, name):
                self._failed[key].append(self.clock())
