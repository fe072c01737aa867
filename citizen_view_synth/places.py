"""Place reference data per country: municipalities with populations and postcode ranges, streets, addresses."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from random import Random

from faker.providers.address import nl_NL as faker_nl_address
from faker.providers.person import no_NO as faker_no

from citizen_view_synth.names import latin1
from citizen_view_synth.pool import Pool, ranked

# (name, population, first postcode, last postcode). Real municipalities, populations rounded;
# a few tiny ones so that small counts per municipality occur.
NL_MUNICIPALITIES: tuple[tuple[str, int, int, int], ...] = (
    ("Amsterdam", 930_000, 1011, 1109),
    ("Rotterdam", 670_000, 3011, 3089),
    ("'s-Gravenhage", 560_000, 2491, 2597),
    ("Utrecht", 370_000, 3511, 3585),
    ("Eindhoven", 240_000, 5611, 5658),
    ("Groningen", 240_000, 9711, 9747),
    ("Tilburg", 225_000, 5011, 5049),
    ("Almere", 220_000, 1311, 1364),
    ("Breda", 185_000, 4811, 4841),
    ("Nijmegen", 180_000, 6511, 6546),
    ("Apeldoorn", 165_000, 7311, 7339),
    ("Haarlem", 165_000, 2011, 2037),
    ("Arnhem", 165_000, 6811, 6846),
    ("Enschede", 160_000, 7511, 7548),
    ("Amersfoort", 160_000, 3811, 3829),
    ("'s-Hertogenbosch", 160_000, 5211, 5237),
    ("Zwolle", 130_000, 8011, 8043),
    ("Leiden", 125_000, 2311, 2334),
    ("Leeuwarden", 125_000, 8911, 8941),
    ("Maastricht", 120_000, 6211, 6229),
    ("Dordrecht", 120_000, 3311, 3329),
    ("Delft", 105_000, 2611, 2629),
    ("Middelburg", 50_000, 4331, 4339),
    ("Renswoude", 5_500, 3927, 3927),
    ("Ameland", 3_800, 9160, 9164),
    ("Rozendaal", 1_600, 6891, 6891),
    ("Vlieland", 1_100, 8899, 8899),
    ("Schiermonnikoog", 950, 9166, 9166),
)
NO_MUNICIPALITIES: tuple[tuple[str, int, int, int], ...] = (
    ("Oslo", 700_000, 150, 1295),
    ("Bergen", 290_000, 5003, 5268),
    ("Trondheim", 212_000, 7010, 7099),
    ("Stavanger", 145_000, 4001, 4099),
    ("Bærum", 128_000, 1300, 1369),
    ("Kristiansand", 115_000, 4608, 4639),
    ("Drammen", 102_000, 3001, 3048),
    ("Asker", 95_000, 1370, 1397),
    ("Lillestrøm", 90_000, 2000, 2027),
    ("Fredrikstad", 84_000, 1601, 1639),
    ("Sandnes", 82_000, 4301, 4329),
    ("Tromsø", 78_000, 9006, 9020),
    ("Ålesund", 67_000, 6001, 6030),
    ("Sandefjord", 65_000, 3201, 3229),
    ("Tønsberg", 58_000, 3101, 3128),
    ("Skien", 55_000, 3701, 3744),
    ("Bodø", 53_000, 8001, 8050),
    ("Hamar", 32_000, 2301, 2326),
    ("Molde", 32_000, 6401, 6419),
    ("Gjøvik", 30_000, 2801, 2827),
    ("Lillehammer", 28_000, 2601, 2625),
    ("Røros", 5_600, 7374, 7374),
    ("Vardø", 2_000, 9950, 9951),
    ("Kvitsøy", 500, 4180, 4180),
    ("Træna", 450, 8770, 8770),
    ("Utsira", 200, 5547, 5547),
)

# Official name -> other names clerks and citizens write for the same place.
CITY_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "NL": {"'s-Gravenhage": ("Den Haag", "s-Gravenhage"), "'s-Hertogenbosch": ("Den Bosch", "s-Hertogenbosch")},
    "NO": {"Bærum": ("Sandvika",), "Lillestrøm": ("Skedsmo",), "Ålesund": ("Aalesund",)},
}

_NO_OTHER_TOWNS = (
    "Narvik",
    "Harstad",
    "Kongsberg",
    "Halden",
    "Larvik",
    "Arendal",
    "Porsgrunn",
    "Haugesund",
    "Kristiansund",
    "Steinkjer",
    "Elverum",
    "Moss",
    "Sarpsborg",
    "Hønefoss",
    "Mo i Rana",
    "Alta",
    "Hammerfest",
    "Førde",
    "Voss",
)
_NL_STREET_BASES = (
    "Kerk",
    "Dorps",
    "School",
    "Molen",
    "Stations",
    "Juliana",
    "Beatrix",
    "Wilhelmina",
    "Oranje",
    "Hoofd",
    "Markt",
    "Kastanje",
    "Eiken",
    "Beuken",
    "Linden",
    "Populieren",
    "Berken",
    "Nieuwe",
    "Prins Hendrik",
    "Emma",
    "Tulpen",
    "Rozen",
    "Sport",
    "Park",
    "Dijk",
    "Haven",
    "Zuid",
    "Noord",
    "Oost",
    "West",
    "Vondel",
    "Rembrandt",
    "Mozart",
    "Iepen",
    "Esdoorn",
    "Wilgen",
    "Platanen",
    "Acacia",
    "Jasmijn",
    "Lelie",
    "Narcissen",
    "Seringen",
    "Hyacinten",
    "Merel",
    "Lijster",
    "Zwaluw",
    "Kievit",
    "Reiger",
    "Vinken",
    "Meeuwen",
    "Spechten",
    "Bakkers",
    "Smids",
    "Vissers",
    "Brouwers",
    "Wevers",
    "Veld",
    "Bos",
    "Beek",
    "Zand",
    "Kanaal",
    "Sluis",
    "Brug",
    "Tuin",
    "Slot",
    "Kasteel",
    "Nassau",
    "Thorbecke",
    "Erasmus",
    "Spinoza",
    "Huygens",
    "Bach",
    "Beethoven",
    "Schubert",
    "Vermeer",
    "Frans Hals",
    "Willem",
    "Pieter",
    "Jan Steen",
    "Hobbema",
    "Ruysdael",
    "Koning",
    "Koningin",
    "Graaf Florens",
)
_NL_STREET_SUFFIXES = ("straat", "laan", "weg", "plein", "gracht", "kade", "dijk", "hof", "singel", "pad", "dreef")
_NO_STREET_BASES = (
    "Stor",
    "Kirke",
    "Skole",
    "Strand",
    "Sjø",
    "Fjell",
    "Park",
    "Bjørn",
    "Elg",
    "Rev",
    "Bjørke",
    "Furu",
    "Gran",
    "Eike",
    "Mølle",
    "Kongs",
    "Prestegårds",
    "Jernbane",
    "Stasjons",
    "Brygge",
    "Hav",
    "Sol",
    "Dronning",
    "Øvre",
    "Nedre",
    "Nord",
    "Sør",
    "Øst",
    "Vest",
    "Lyng",
    "Bekke",
    "Åker",
    "Skogs",
    "Torg",
    "Lønne",
    "Hegg",
    "Rogn",
    "Ask",
    "Lind",
    "Selje",
    "Ulv",
    "Hare",
    "Ørn",
    "Måke",
    "Svane",
    "Trost",
    "Lerke",
    "Fjord",
    "Eng",
    "Myr",
    "Haug",
    "Berg",
    "Vik",
    "Nes",
    "Dal",
    "Kvern",
    "Smie",
    "Gård",
    "Løkke",
    "Tømmer",
    "Sag",
    "Fossen",
    "Bryggerhus",
)
_NO_STREET_SUFFIXES = (
    "veien",
    "gata",
    "vegen",
    "gate",
    "bakken",
    "stien",
    "svingen",
    "lia",
    "åsen",
    "haugen",
    "tunet",
    "løkka",
    "alléen",
    "kroken",
    "plassen",
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
        bases, suffixes = _NL_STREET_BASES, _NL_STREET_SUFFIXES
        towns = [c for c in faker_nl_address.Provider.cities if c.isalpha() and latin1(c)]
        rest = [f"{t}{s}" for t in towns for s in ("weg", "straat", "laan")]
    else:
        bases, suffixes = _NO_STREET_BASES, _NO_STREET_SUFFIXES
        people = [n for n in faker_no.Provider.first_names_male if n.isalpha() and latin1(n)]
        rest = [f"{n}s {s}" for n in people for s in ("gate", "vei", "veg")]
        rest += [f"{t}{s}" for t in _NO_OTHER_TOWNS if t.isalpha() for s in ("veien", "gata")]
    common = [b + s for b in bases for s in suffixes[:4]]
    Random(f"streets-{country}").shuffle(common)
    rare = [b + s for b in bases for s in suffixes[4:]]
    return ranked(common, [*rare, *rest], shuffle_seed=f"streets-rest-{country}")


@lru_cache(maxsize=4)
def gazetteer(country: str) -> Gazetteer:
    """The country's municipalities, streets and postcodes (deterministic reference data)."""
    table = {"NL": NL_MUNICIPALITIES, "NO": NO_MUNICIPALITIES}.get(country)
    if table is None:
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
        domestic = _NO_OTHER_TOWNS
    return Gazetteer(
        country=country,
        municipalities=Pool(municipalities, [m.population for m in municipalities]),
        by_name={m.name: m for m in municipalities},
        domestic_birthplaces=domestic,
        aliases=CITY_ALIASES[country],
    )
