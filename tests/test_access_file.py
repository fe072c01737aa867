"""An access file that would silently grant, replace or blur who looked is refused with its reason."""

from __future__ import annotations

import pytest

from citizen_view.contract import ConfigError
from citizen_view.serving.access import EXAMPLE_ACCESS_FILE, hash_token, load_access


def _access(tmp_path, text: str):
    path = tmp_path / "access.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_access_file_loads():
    config = load_access(EXAMPLE_ACCESS_FILE)
    assert "benefits_caseworker" in config.roles and len({u.name for u in config.users}) == len(config.users)


def test_a_role_written_twice_is_refused_not_replaced(tmp_path):
    # An administrator appends a wider copy of a role: YAML would keep only the second, and nobody would be told.
    example = EXAMPLE_ACCESS_FILE.read_text(encoding="utf-8")
    wider = "roles:\n  benefits_caseworker:\n    description: wider\n    sources: all\n    fields: [given_name]\n"
    text = example.replace("roles:\n", wider, 1)
    with pytest.raises(ConfigError, match=r"line \d+: the key 'benefits_caseworker' is given twice in one mapping"):
        load_access(_access(tmp_path, text))


def test_a_key_given_twice_inside_a_role_is_refused(tmp_path):
    text = f"""
roles:
  clerk:
    description: one
    sources: [population]
    fields: [given_name]
    sources: all
users:
- {{name: a, organisation: o, role: clerk, token_sha256: {hash_token("a-token-of-some-length")}}}
"""
    with pytest.raises(
        ConfigError, match=r"line 7: the key 'sources' is given twice in one mapping \(first on line 5\)"
    ):
        load_access(_access(tmp_path, text))


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        (
            "{name: a, organisation: p, role: clerk, token_sha256: %s}" % hash_token("b-token"),
            "two users are named 'a'",
        ),
        ("{name: b, organisation: p, role: clerk, token_sha256: %s}" % hash_token("a-token"), "have the same token"),
    ],
)
def test_two_users_who_could_not_be_told_apart_are_refused(tmp_path, second, reason):
    text = f"""
roles:
  clerk: {{description: one, sources: [population], fields: [given_name]}}
users:
- {{name: a, organisation: o, role: clerk, token_sha256: {hash_token("a-token")}}}
- {second}
"""
    with pytest.raises(ConfigError, match=reason):
        load_access(_access(tmp_path, text))


def test_a_yaml_merge_is_not_a_repeated_key(tmp_path):
    # `<<: *base` then a key of the merged mapping is YAML's own override, not a typo.
    text = f"""
roles:
  base: &base {{description: base, sources: [population], fields: [given_name]}}
  clerk:
    <<: *base
    description: clerk
users:
- {{name: a, organisation: o, role: clerk, token_sha256: {hash_token("a-token")}}}
"""
    config = load_access(_access(tmp_path, text))
    assert config.roles["clerk"].description == "clerk" and config.roles["clerk"].sources == ["population"]


@pytest.mark.parametrize(
    ("submits", "reason"),
    [
        ("[online]", "submits may not list 'online'"),
        ("['benefits:x']", r"submits lists \['benefits:x'\]: source names match"),
    ],
)
def test_a_role_may_not_submit_as_online_or_as_what_is_no_source_name(tmp_path, submits, reason):
    """`submits` grants taking in an agency's incoming records (POST /api/resolve with a source and key): the source
    `online` is what such records become, and a record's key is its source, a colon and the agency's key."""
    text = f"""
roles:
  clerk:
    sources: [population]
    fields: [given_name]
    submits: {submits}
users:
- {{name: a, organisation: o, role: clerk, token_sha256: {hash_token("a-token-of-some-length")}}}
"""
    with pytest.raises(ConfigError, match=reason):
        load_access(_access(tmp_path, text))
