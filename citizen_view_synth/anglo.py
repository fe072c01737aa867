"""An English-speaking synthetic world (US or GB names and addresses) for the `dense` and `multi-agency` profiles.

Names come from faker's en_US / en_GB person providers (their lists, drawn with our own seeded `Random`,
so output does not depend on faker's random state); addresses are built from a small fixed set of towns
per run. Households share an address and a family name; some have twins (same birth date and surname).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from random import Random

from citizen_view_synth import reference
from citizen_view_synth.dates import REF, age_on, years_ago
from citizen_view_synth.noise import typo
from citizen_view_synth.pool import Pool

_ENGLISH = reference.table("names.json")["en"]
# Common English nicknames (formal -> short forms); the sources write them instead of the formal name.
NICKNAMES: dict[str, tuple[str, ...]] = _ENGLISH["nicknames"]
# Twin pairs that parents choose on purpose (the hard case: same birth date, surname, address; similar names).
TWIN_NAMES: dict[str, tuple[tuple[str, str], ...]] = _ENGLISH["twin_names"]

_US_STATES = ("CA", "TX", "FL", "NY", "PA", "IL", "OH", "GA", "NC", "MI", "WA", "AZ")


@dataclass
class Home:
    """One dwelling: number, street, unit, town, state/county, postcode."""

    number: str
    street: str
    unit: str
    city: str
    state: str
    postcode: str


@dataclass
class Resident:
    """One synthetic person, the truth the records are noisy copies of."""

    pid: str
    sex: str
    given: str
    middle: str
    family: str
    dob: date
    home: Home
    prev_home: Home | None = None
    ssn: str = ""
    phone: str = ""
    suffix: str = ""
    household: int = 0
    twin: bool = False
    died_on: date | None = None
    extra: dict = field(default_factory=dict)

    @property
    def age(self) -> int:
        return age_on(self.dob)


@dataclass(frozen=True)
class NameLists:
    """Weighted given names per sex and family names of one locale."""

    male: Pool[str]
    female: Pool[str]
    family: Pool[str]
    street_suffixes: tuple[str, ...]


@lru_cache(maxsize=4)
def name_lists(locale: str) -> NameLists:
    """faker's person and address lists for `locale` ("en_US" or "en_GB") as Zipf-weighted pools."""
    if locale == "en_US":
        from faker.providers.address import en_US as address
        from faker.providers.person import en_US as person
    elif locale == "en_GB":
        from faker.providers.address import en_GB as address
        from faker.providers.person import en_GB as person
    else:
        raise ValueError(f"no name lists for locale {locale!r} (have en_US, en_GB)")
    p = person.Provider
    return NameLists(
        male=_pool(p.first_names_male),
        female=_pool(p.first_names_female),
        family=_pool(p.last_names),
        street_suffixes=tuple(address.Provider.street_suffixes)[:40],
    )


def _pool(names) -> Pool[str]:
    """faker's frequency weights where it has them (an ordered mapping), else Zipf weights in its listed order."""
    if hasattr(names, "items"):
        items = [(n, float(w)) for n, w in names.items()]
        return Pool([n for n, _ in items], [w for _, w in items])
    return Pool.zipf(list(dict.fromkeys(names)), exponent=0.8, offset=5.0)


class World:
    """Builds residents household by household for one locale and seed; deterministic, no wall clock."""

    def __init__(self, *, locale: str, seed: int, towns: int = 12) -> None:
        self.locale = locale
        self.seed = seed
        self.names = name_lists(locale)
        rng = Random(f"towns:{locale}:{seed}")
        self.towns: list[tuple[str, str, str]] = []  # (town, state or county, postcode prefix)
        for i in range(towns):
            town = f"{self.names.family.pick(rng)}{rng.choice(('ville', 'ton', 'field', 'burg', 'wood', 'port'))}"
            if locale == "en_US":
                self.towns.append((town, _US_STATES[i % len(_US_STATES)], f"{rng.randrange(100, 999):03d}"))
            else:
                self.towns.append((town, "", f"{rng.choice('BCDHLMNPS')}{rng.choice('ABEHLMNRT')}{rng.randint(1, 20)}"))
        self._ssns: set[str] = set()

    # -- values --------------------------------------------------------------------------------------------

    def home(self, rng: Random) -> Home:
        town, state, prefix = self.towns[min(int(rng.expovariate(0.35)), len(self.towns) - 1)]
        street = f"{self.names.family.pick(rng)} {rng.choice(self.names.street_suffixes)}"
        unit = f"Apt {rng.randint(1, 30)}" if rng.random() < 0.2 else ""
        if self.locale == "en_US":
            postcode = f"{prefix}{rng.randrange(100):02d}"
        else:
            postcode = (
                f"{prefix} {rng.randint(1, 9)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"
            )
        return Home(str(rng.randint(1, 9999)), street, unit, town, state, postcode)

    def ssn(self, rng: Random) -> str:
        """A new valid-looking SSN (area 001-899 but not 666, group 01-99, serial 0001-9999), unique in the run."""
        while True:
            area = rng.randint(1, 899)
            if area == 666:
                continue
            value = f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"
            if value not in self._ssns and value not in ("078051120", "457555462", "219099999"):
                self._ssns.add(value)
                return value

    def given(self, rng: Random, sex: str) -> str:
        return (self.names.male if sex == "M" else self.names.female).pick(rng)

    # -- households ----------------------------------------------------------------------------------------

    def people(self, count: int, *, rng: Random, ssn_share: float = 0.0, twins: float = 0.05) -> list[Resident]:
        """`count` residents P0000001..., household by household (singles, couples, families with children)."""
        out: list[Resident] = []
        household = 0
        while len(out) < count:
            household += 1
            out.extend(self._household(rng, household, twins=twins))
        del out[count:]
        for i, p in enumerate(out):
            p.pid = f"P{i + 1:07d}"
            if rng.random() < ssn_share:
                p.ssn = self.ssn(rng)
            if p.age >= 14 and rng.random() < 0.85:
                p.phone = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randrange(10000):04d}"
            if rng.random() < (0.002 if p.age < 60 else 0.03):
                p.died_on = date.fromordinal(rng.randint(max(p.dob.toordinal() + 1, years_ago(5)), REF - 1))
        return out

    def _person(self, rng: Random, sex: str, age: float, family: str, home: Home, household: int) -> Resident:
        dob = date.fromordinal(years_ago(age))
        middle = self.given(rng, sex) if rng.random() < 0.7 else ""
        return Resident("", sex, self.given(rng, sex), middle, family, dob, home, household=household)

    def _household(self, rng: Random, household: int, *, twins: float) -> list[Resident]:
        home = self.home(rng)
        family = self.names.family.pick(rng)
        head_age = rng.uniform(18, 95)
        head = self._person(rng, rng.choice("MF"), head_age, family, home, household)
        members = [head]
        r = rng.random()
        if r < 0.55:  # a couple, most sharing the family name
            partner_family = family if rng.random() < 0.75 else self.names.family.pick(rng)
            sex = "F" if head.sex == "M" else "M"
            members.append(
                self._person(rng, sex, max(18.0, head_age + rng.gauss(0, 4)), partner_family, home, household)
            )
        if r < 0.45 and 20 < head_age < 60:  # children
            for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
                kid_age = rng.uniform(0, min(head_age - 18, 25))
                members.append(self._person(rng, rng.choice("MF"), kid_age, family, home, household))
            if rng.random() < twins:
                sib = members[-1]
                sex = sib.sex if rng.random() < 0.6 else ("F" if sib.sex == "M" else "M")
                if sex == sib.sex and rng.random() < 0.5:
                    sib.given, name = TWIN_NAMES[sex][rng.randrange(len(TWIN_NAMES[sex]))]
                else:
                    name = self.given(rng, sex)
                twin = Resident("", sex, name, "", family, sib.dob, home, household=household, twin=True)
                sib.twin = True
                members.append(twin)
        if head.sex == "M" and len(members) > 2 and rng.random() < 0.05:  # a junior: same names as the father
            junior = members[2]
            if junior.sex == "M" and junior.age >= 16:
                junior.given, junior.middle, junior.suffix = head.given, head.middle, "Jr"
        if rng.random() < 0.35:
            prev = self.home(rng)
            for p in members:
                p.prev_home = prev
        return members


def nickname(rng: Random, given: str, rate: float) -> str:
    """The given name, or one of its nicknames at `rate`."""
    short = NICKNAMES.get(given)
    return short[rng.randrange(len(short))] if short and rng.random() < rate else given


def noisy(rng: Random, s: str, rate: float) -> str:
    """`s` with one keyboard slip at `rate`, upper-cased at rate / 3."""
    if s and rng.random() < rate:
        s = typo(rng, s)
    if s and rng.random() < rate / 3:
        s = s.upper()
    return s
