"""Name pools per country: surnames, given names, nicknames, twin names, email domains (lists in data/names.json)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from random import Random

from faker.providers.person import nl_NL as faker_nl
from faker.providers.person import no_NO as faker_no

from citizen_view_synth import reference
from citizen_view_synth.pool import Pool, ranked

_NAMES = reference.table("names.json")
# Dutch surname prefixes (tussenvoegsels), longest first so "van der" wins over "van".
NL_PREFIXES: tuple[str, ...] = _NAMES["NL"]["surname_prefixes"]


def latin1(name: str) -> bool:
    """True if the name can be written to the latin-1 mainframe extracts."""
    try:
        name.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def split_prefix(family: str) -> tuple[str, str]:
    """('van der', 'Berg') for 'van der Berg'; ('', 'Jansen') when there is no Dutch prefix."""
    for prefix in NL_PREFIXES:
        if family.startswith(prefix + " ") and len(family) > len(prefix) + 1:
            return prefix, family[len(prefix) + 1 :]
    return "", family


def _plain_word(name: str) -> bool:
    return latin1(name) and name.isalpha() and name[:1].isupper() and len(name) > 1


def _nl_prefixed(name: str) -> bool:
    prefix, rest = split_prefix(name)
    return bool(prefix) and latin1(name) and _plain_word(rest)


@dataclass(frozen=True)
class NameBook:
    """All name pools of one country, built once per run."""

    country: str
    surnames: Pool[str]
    prefixed_surnames: Pool[str] | None
    prefix_share: float
    traditional: dict[str, Pool[str]]
    modern: dict[str, Pool[str]]
    nicknames: dict[str, tuple[str, ...]]
    twin_names: dict[str, tuple[tuple[str, str], ...]]
    email_domains: Pool[str]
    foreign_birthplaces: tuple[str, ...]

    def given_pool(self, rng: Random, sex: str, birth_year: int) -> Pool[str]:
        """Traditional names for older cohorts, modern ones for the young, a mix in between."""
        p_traditional = 0.8 if birth_year < 1965 else 0.4 if birth_year < 1990 else 0.1
        return self.traditional[sex] if rng.random() < p_traditional else self.modern[sex]

    def surname(self, rng: Random) -> str:
        """A family name; in NL about a quarter carry a prefix like 'van der'."""
        if self.prefixed_surnames is not None and rng.random() < self.prefix_share:
            return self.prefixed_surnames.pick(rng)
        return self.surnames.pick(rng)


@lru_cache(maxsize=4)
def name_book(country: str) -> NameBook:
    """The country's name pools (Faker's locale lists plus the common names in data/names.json), Zipf-weighted."""
    if country == "NL":
        fk = faker_nl.Provider
        lists = _NAMES["NL"]
        plain = ranked(lists["common_surnames"], fk.last_names, shuffle_seed="nl-surnames", keep=_plain_word)
        prefixed = ranked(
            lists["common_prefixed_surnames"], fk.last_names, shuffle_seed="nl-prefixed", keep=_nl_prefixed
        )
        prefixed_pool: Pool[str] | None = Pool.zipf(prefixed, offset=10.0)
        share = 0.25
    elif country == "NO":
        fk = faker_no.Provider
        lists = _NAMES["NO"]
        plain = ranked(
            lists["common_surnames"],
            (*fk.last_names, *lists["extra_surnames"]),
            shuffle_seed="no-surnames",
            keep=_plain_word,
        )
        prefixed_pool = None
        share = 0.0
    else:
        raise ValueError(f"unsupported country {country!r} (expected NL or NO)")
    trad, modern = lists["traditional_given_names"], lists["modern_given_names"]
    faker_given = {"M": fk.first_names_male, "F": fk.first_names_female}
    traditional = {
        sex: Pool.zipf(
            ranked(trad[sex], faker_given[sex], shuffle_seed=f"{country}-trad-{sex}", keep=_plain_word), offset=5.0
        )
        for sex in ("M", "F")
    }
    modern_pools = {
        sex: Pool.zipf(
            ranked(modern[sex], faker_given[sex], shuffle_seed=f"{country}-mod-{sex}", keep=_plain_word), offset=5.0
        )
        for sex in ("M", "F")
    }
    return NameBook(
        country=country,
        surnames=Pool.zipf(plain, offset=15.0),
        prefixed_surnames=prefixed_pool,
        prefix_share=share,
        traditional=traditional,
        modern=modern_pools,
        nicknames=lists["nicknames"],
        twin_names=lists["twin_names"],
        email_domains=Pool.zipf(lists["email_domains"], offset=1.0),
        foreign_birthplaces=lists["foreign_birthplaces"],
    )
