"""Who may see what: roles (visible sources and fields), users with hashed tokens, and the authenticator seam.

A role lists the sources whose records and cases it may see and the golden-record fields it may
see (an organisation's access package, as in the Dutch BRP and the Norwegian Folkeregister). The
server removes everything else before a response is built, for the API and the pages alike.
Tokens are stored only as SHA-256 hashes. `Authenticator` is the seam for a real identity provider.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from citizen_view.contract import CanonicalField, ConfigError

# Demo roles, users and tokens for the synthetic sample: `citizen-view init` copies it into a warehouse's folder.
EXAMPLE_ACCESS_FILE = Path(__file__).with_name("example_access.yaml")

# Golden-record fields a role can be granted (the canonical fields), plus the sources' own other columns.
SOURCE_ATTRIBUTES = "source_attributes"
GRANTABLE_FIELDS: tuple[str, ...] = (*CanonicalField, SOURCE_ATTRIBUTES)


class Role(BaseModel):
    """An access package: sources and fields visible, and whether the role may decide clerical reviews."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    sources: list[str]
    fields: list[str]
    reviewer: bool = False
    citizen_access: bool = False  # may read a citizen's access report ("who looked at me"), as a citizen portal does

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

    @model_validator(mode="after")
    def _roles_exist(self) -> AccessConfig:
        for user in self.users:
            if user.role not in self.roles:
                raise ValueError(f"user {user.name!r} has unknown role {user.role!r}")
        return self


@dataclass(frozen=True)
class Principal:
    """An authenticated caseworker."""

    user: str
    organisation: str
    role_name: str
    role: Role


class Authenticator(Protocol):
    """Turns a presented credential into a principal, or None (the seam for an identity provider)."""

    def authenticate(self, token: str) -> Principal | None: ...


class TokenAuthenticator:
    """Bearer tokens checked against the SHA-256 hashes in the access file (constant-time comparison)."""

    def __init__(self, config: AccessConfig):
        self.config = config

    def authenticate(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        for user in self.config.users:
            if hmac.compare_digest(digest, user.token_sha256):
                return Principal(user.name, user.organisation, user.role, self.config.roles[user.role])
        return None


def hash_token(token: str) -> str:
    """The value to put in `token_sha256` for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_access(path: str | Path) -> AccessConfig:
    """Read and validate an access file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"access file not found: {path}")
    try:
        return AccessConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: invalid access file: {exc}") from None
