"""Who may see what: roles (visible sources and fields), users with hashed tokens, and the authenticator seam.

A role lists the sources whose records and cases it may see and the golden-record fields it may
see (an organisation's access package, as in the Dutch BRP and the Norwegian Folkeregister). The
server removes everything else before a response is built, for the API and the pages alike.
Tokens are stored only as SHA-256 hashes. `Authenticator` is the seam for a real identity provider.

A citizen portal (a role with `citizen_access`) acts for one signed-in citizen at a time: with each
request it sends a citizen claim, `<national ID>.<expiry, Unix seconds>.<hex HMAC-SHA256 of
"<national ID>.<expiry>" under the portal secret>`, made after its own login (DigiD, ID-porten). The
secret comes from $CITIZEN_VIEW_PORTAL_SECRET or the access file's `portal_secret`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citizen_view.contract import SOURCE_NAME, CanonicalField, ConfigError, safe_yaml
from citizen_view.linkage.online import ONLINE_SOURCE

# Demo roles, users and tokens for the synthetic sample: `citizen-view init` copies it into a warehouse's folder.
EXAMPLE_ACCESS_FILE = Path(__file__).with_name("example_access.yaml")

PORTAL_SECRET_ENV = "CITIZEN_VIEW_PORTAL_SECRET"
MAX_CLAIM_SECONDS = 3600  # a claim valid for longer than this is refused: the portal signs short-lived ones
_CLAIM = re.compile(r"^(?P<subject>[^.]{1,64}(?:\.[^.]{1,64})*)\.(?P<expires>\d{1,12})\.(?P<mac>[0-9a-f]{64})$")

# Golden-record fields a role can be granted (the canonical fields), plus the sources' own other columns.
SOURCE_ATTRIBUTES = "source_attributes"
GRANTABLE_FIELDS: tuple[str, ...] = (*CanonicalField, SOURCE_ATTRIBUTES)


ALL_SOURCES = "all"  # `sources: all`: every source of the served view, a source added later included


class Role(BaseModel):
    """An access package: sources and fields visible, the sources whose incoming records it may submit (`submits`:
    `POST /api/resolve` with a `source` and its key, taken in by the next run; none unless listed, and never `online`,
    the source such records become), and whether the role may decide clerical reviews.

    `sources: all` names every source of the view being served, resolved at each request (`for_view`), so a new
    source is visible to such a role at once; a role that lists its sources sees a new one only once it is listed.
    Unresolved, an `all` role sees no source (fail closed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    sources: list[str]
    fields: list[str]
    submits: list[str] = []
    reviewer: bool = False
    citizen_access: bool = False  # may read a citizen's access report ("who looked at me"), as a citizen portal does
    every_source: bool = False  # set by `sources: all`

    @model_validator(mode="before")
    @classmethod
    def _all_sources(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("sources"), str):
            if data["sources"] != ALL_SOURCES:
                raise ValueError(f"sources must be a list of source names or {ALL_SOURCES!r}, not {data['sources']!r}")
            return {**data, "sources": [], "every_source": True}
        return data

    def for_view(self, served: Sequence[str]) -> Role:
        """This role with `sources: all` resolved against the sources of the served view (other roles unchanged)."""
        return self.model_copy(update={"sources": sorted(served)}) if self.every_source else self

    @model_validator(mode="after")
    def _submits_agency_sources(self) -> Role:
        if ONLINE_SOURCE in self.submits:
            raise ValueError(
                f"submits may not list {ONLINE_SOURCE!r}: it is the source records submitted online become"
            )
        if bad := [s for s in self.submits if not SOURCE_NAME.fullmatch(s)]:
            raise ValueError(f"submits lists {bad}: source names match [a-z0-9_]+")
        return self

    @model_validator(mode="after")
    def _known_fields(self) -> Role:
        unknown = sorted(set(self.fields) - set(GRANTABLE_FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; grantable: {', '.join(GRANTABLE_FIELDS)}")
        return self

    def sees(self, field_name: str) -> bool:
        return field_name in self.fields


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    organisation: str
    role: str
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AccessConfig(BaseModel):
    """The whole access file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    roles: dict[str, Role]
    users: list[User]
    portal_secret: str | None = Field(default=None, min_length=32, repr=False)  # $CITIZEN_VIEW_PORTAL_SECRET wins

    @model_validator(mode="after")
    def _users_known_apart(self) -> AccessConfig:
        """Each user has a known role, a name of their own and a token of their own: two users under one name, or
        one token for two users (the first would win), would make the audit log name the wrong person."""
        names: dict[str, User] = {}
        tokens: dict[str, User] = {}
        for user in self.users:
            if user.role not in self.roles:
                raise ValueError(f"user {user.name!r} has unknown role {user.role!r}")
            if names.setdefault(user.name, user) is not user:
                raise ValueError(f"two users are named {user.name!r}: the audit log could not tell them apart")
            other = tokens.setdefault(user.token_sha256, user)
            if other is not user:
                raise ValueError(
                    f"users {other.name!r} and {user.name!r} have the same token: each user needs a token of their own"
                )
        return self


@dataclass(frozen=True)
class Principal:
    """An authenticated caseworker."""

    user: str
    organisation: str
    role_name: str
    role: Role
    citizen: str | None = None  # for a citizen portal: the national ID of the citizen it signed in, from a valid claim


class Authenticator(Protocol):
    """Turns a presented credential (and, for a citizen portal, its citizen claim) into a principal, or None (the
    seam for an identity provider). A principal's `citizen` is set only from a claim the authenticator verified."""

    def authenticate(self, token: str, citizen_claim: str | None = None) -> Principal | None: ...


class TokenAuthenticator:
    """Bearer tokens checked against the SHA-256 hashes in the access file (constant-time comparison); a citizen
    portal's claim checked against the portal secret."""

    def __init__(
        self,
        config: AccessConfig,
        *,
        portal_secret: str | None = None,
        served_sources: Callable[[], Sequence[str]] | None = None,
    ):
        self.config = config
        self.portal_secret = portal_secret or os.environ.get(PORTAL_SECRET_ENV) or config.portal_secret
        self.served_sources = served_sources  # resolves `sources: all` at each request (see `view_sources`)

    def authenticate(self, token: str, citizen_claim: str | None = None) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        for user in self.config.users:
            if hmac.compare_digest(digest, user.token_sha256):
                role = self.config.roles[user.role]
                if role.every_source and self.served_sources is not None:
                    role = role.for_view(self.served_sources())
                citizen = None
                if role.citizen_access and citizen_claim and self.portal_secret:
                    citizen = verify_citizen_claim(citizen_claim, self.portal_secret)
                return Principal(user.name, user.organisation, user.role, role, citizen)
        return None


def view_sources(serving_folder: Path) -> Callable[[], list[str]]:
    """The sources of the view currently served from a folder, read once per view file (a new view: read again)."""
    import duckdb

    from citizen_view.serving.snapshot import current_view

    cache: dict[str, list[str]] = {}
    lock = threading.Lock()

    def sources() -> list[str]:
        path = current_view(serving_folder)
        if path is None:
            return []
        with lock:
            if path.name not in cache:
                con = duckdb.connect(str(path), read_only=True)
                try:
                    cache.clear()
                    cache[path.name] = _sources_of(con)
                finally:
                    con.close()
            return cache[path.name]

    return sources


def _sources_of(con) -> list[str]:
    """The sources a served view holds: the ranked ones and any other it has records of (`online`, in no ranking)."""
    import duckdb

    from citizen_view.serving.documents import RECORD_CITIZENS

    ranked = "SELECT source FROM source_rank"
    try:
        rows = con.execute(f"{ranked} UNION SELECT DISTINCT source FROM {RECORD_CITIZENS} ORDER BY 1").fetchall()
    except duckdb.CatalogException:  # a view written before it held `record_citizens`
        rows = con.execute(f"{ranked} ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def sign_citizen_claim(national_id: str, secret: str, *, valid_for: int = 300, now: float | None = None) -> str:
    """The claim a portal sends for the citizen it signed in: `<national ID>.<expiry>.<HMAC-SHA256 hex>`."""
    expires = int((time.time() if now is None else now) + valid_for)
    message = f"{national_id}.{expires}"
    return f"{message}.{hmac.new(secret.encode('utf-8'), message.encode('utf-8'), hashlib.sha256).hexdigest()}"


def verify_citizen_claim(claim: str, secret: str, *, now: float | None = None) -> str | None:
    """The national ID a claim names, when its signature is right and it has not expired (nor expires more than
    MAX_CLAIM_SECONDS from now); else None."""
    match = _CLAIM.match(claim.strip()) if len(claim) <= 512 else None
    if match is None:
        return None
    message = f"{match['subject']}.{match['expires']}"
    expected = hmac.new(secret.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, match["mac"]):
        return None
    moment = time.time() if now is None else now
    return match["subject"] if moment <= int(match["expires"]) <= moment + MAX_CLAIM_SECONDS else None


def hash_token(token: str) -> str:
    """The value to put in `token_sha256` for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_access(path: str | Path) -> AccessConfig:
    """Read and validate an access file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"access file not found: {path}")
    try:
        return AccessConfig.model_validate(safe_yaml(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError, ConfigError) as exc:
        raise ConfigError(f"{path}: invalid access file: {exc}") from None
