"""Places per country: municipalities with populations and postcode ranges, streets, addresses (tables in data/)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from random import Random

from faker.providers.address import nl_NL as faker_nl_address
from faker.providers.person import no_NO as faker_no

from citizen_view_synth import reference
from citizen_view_synth.names import latin1
from citizen_view_synth.pool import Pool, ranked

_PLACES = reference.table("places.json")


def _municipalities(country: str) -> tuple[tuple[str, int, int, int], ...]:
    """(name, population, first postcode, last postcode) from data/municipalities.csv: real municipalities,
    populations rounded; a few tiny ones so that small counts per municipality occur."""
    return tuple(
        (r["name"], int(r["population"]), int(r["first_postcode"]), int(r["last_postcode"]))
        for r in reference.rows("municipalities.csv")
        if r["country"] == country
    )


_NL_LETTERS = "ABCDEGHJKLMNPRSTVWXZ"


@dataclass(frozen=True, slots=True)
class Address:
    """A dwelling: street, house number, optional unit, canonical postcode ("1234AB" / "0150"), municipality."""

    street: str
    number: str
    unit: str
    postcode: str
    city: str


@dataclass(frozen=True, slots=True)
class Street:
    """One street of a municipality with its postcode digits and highest house number."""

    name: str
    digits: int
    max_number: int
    letter_base: int


@dataclass(frozen=True)
class Municipality:
    """A municipality and its streets."""

    name: str
    population: int
    streets: tuple[Street, ...]


@dataclass(frozen=True)
class Gazetteer:
    """All places of one country, built once per run from a fixed seed (independent of the run's seed)."""

    country: str
    municipalities: Pool[Municipality]
    by_name: dict[str, Municipality]
    domestic_birthplaces: tuple[str, ...]
    aliases: dict[str, tuple[str, ...]]

    def address(self, rng: Random, municipality: Municipality | None = None) -> Address:
        """A random dwelling, in the given municipality or one drawn by population."""
        m = municipality or self.municipalities.pick(rng)
        street = m.streets[rng.randrange(len(m.streets))]
        number = 1 + int(street.max_number * rng.random() ** 1.6)
        unit = ""
        if rng.random() < 0.12:
            unit = _unit(rng, self.country)
        return Address(street.name, str(number), unit, self.postcode(street, number), m.name)

    def postcode(self, street: Street, number: int) -> str:
        """NL: street digits + two letters that change every 24 house numbers; NO: the street's 4 digits."""
        if self.country == "NO":
            return f"{street.digits:04d}"
        pair = (street.letter_base + (number - 1) // 24) % (len(_NL_LETTERS) ** 2)
        return f"{street.digits:04d}{_NL_LETTERS[pair // len(_NL_LETTERS)]}{_NL_LETTERS[pair % len(_NL_LETTERS)]}"

    def birthplace(self, rng: Random, foreign: tuple[str, ...]) -> str:
        """Mostly a municipality of the country, sometimes another town, a few abroad."""
        r = rng.random()
        if r < 0.72:
            return self.municipalities.pick(rng).name
        if r < 0.95:
            return self.domestic_birthplaces[rng.randrange(len(self.domestic_birthplaces))]
        return foreign[rng.randrange(len(foreign))]


def _unit(rng: Random, country: str) -> str:
    if country == "NL":
        return ("A", "B", "C", "1", "2", "3", "bis", "H", "I", "II")[int(10 * rng.random() ** 1.5)]
    if rng.random() < 0.3:
        return f"H0{rng.randint(1, 4)}0{rng.randint(1, 4)}"
    return ("A", "B", "C", "D")[int(4 * rng.random() ** 1.5)]


def _street_names(country: str) -> list[str]:
    """Street names, most common first: hand-written bases with common suffixes, then rarer combinations and
    streets named after towns (NL "Utrechtseweg"-like) or people (NO "Olavs gate")."""
    if country == "NL":
        bases, suffixes = _PLACES["NL"]["street_bases"], _PLACES["NL"]["street_suffixes"]
        towns = [c for c in faker_nl_address.Provider.cities if c.isalpha() and latin1(c)]
        rest = [f"{t}{s}" for t in towns for s in ("weg", "straat", "laan")]
    else:
        bases, suffixes = _PLACES["NO"]["street_bases"], _PLACES["NO"]["street_suffixes"]
        people = [n for n in faker_no.Provider.first_names_male if n.isalpha() and latin1(n)]
        rest = [f"{n}s {s}" for n in people for s in ("gate", "vei", "veg")]
        rest += [f"{t}{s}" for t in _PLACES["NO"]["other_towns"] if t.isalpha() for s in ("veien", "gata")]
    common = [b + s for b in bases for s in suffixes[:4]]
    Random(f"streets-{country}").shuffle(common)
    rare = [b + s for b in bases for s in suffixes[4:]]
    return ranked(common, [*rare, *rest], shuffle_seed=f"streets-rest-{country}")


@lru_cache(maxsize=4)
def gazetteer(country: str) -> Gazetteer:
    """The country's municipalities, streets and postcodes (deterministic reference data)."""
    table = _municipalities(country)
    if not table:
        raise ValueError(f"unsupported country {country!r} (expected NL or NO)")
    names = Pool.zipf(_street_names(country), exponent=0.8)
    rng = Random(f"gazetteer-{country}")
    municipalities = []
    for name, population, lo, hi in table:
        n_streets = max(4, min(600, population // 1500))
        chosen: dict[str, Street] = {}
        while len(chosen) < n_streets:
            street = names.pick(rng)
            if street not in chosen:
                chosen[street] = Street(
                    street,
                    rng.randint(lo, hi),
                    rng.choice((20, 40, 80, 150, 250)),
                    rng.randrange(len(_NL_LETTERS) ** 2),
                )
        municipalities.append(Municipality(name, population, tuple(chosen.values())))
    if country == "NL":
        domestic = tuple(c for c in faker_nl_address.Provider.cities if latin1(c))
    else:
        domestic = _PLACES["NO"]["other_towns"]
    return Gazetteer(
        country=country,
        municipalities=Pool(municipalities, [m.population for m in municipalities]),
        by_name={m.name: m for m in municipalities},
        domestic_birthplaces=domestic,
        aliases=_PLACES[country]["city_aliases"],
    )
