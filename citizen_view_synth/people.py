"""The synthetic truth: persons generated household by household (singles, couples, families, twins, juniors)."""

from __future__ import annotations

from datetime import date
from random import Random

from citizen_view_synth.dates import REF, add_years, age_on, between, years_ago
from citizen_view_synth.names import NameBook, name_book
from citizen_view_synth.national_id import FodselsnummerAllocator, bsn_for
from citizen_view_synth.noise import NoiseConfig
from citizen_view_synth.places import Address, Gazetteer, gazetteer
from citizen_view_synth.pool import Pool, by_age
from citizen_view_synth.spelling import email_part

_fromordinal = date.fromordinal


class Person:
    """One synthetic citizen: the truth every source record is a noisy copy of."""

    __slots__ = (
        "pid",
        "sex",
        "given",
        "middle",
        "family",
        "birth_family",
        "dob",
        "age",
        "birth_place",
        "address",
        "moved_in",
        "prev_address",
        "married_on",
        "died_on",
        "email",
        "phone",
        "national_id",
    )

    def __init__(self, sex: str, given: tuple[str, ...], family: str, dob: date) -> None:
        self.pid = ""
        self.sex = sex
        self.given = given  # 1-3 given names, the first is the call name
        self.middle = ""  # NO only: a second family name between given and family name
        self.family = family  # current family name (the partner's after a marriage name change)
        self.birth_family = family
        self.dob = dob
        self.age = age_on(dob)
        self.birth_place = ""
        self.address: Address | None = None
        self.moved_in: date | None = None
        self.prev_address: Address | None = None
        self.married_on: date | None = None
        self.died_on: date | None = None
        self.email = ""
        self.phone = ""
        self.national_id = ""

    @property
    def name_changed(self) -> bool:
        """True when the person uses another family name than their birth name (after marriage)."""
        return self.family != self.birth_family

    def __repr__(self) -> str:
        return f"Person({self.pid} {' '.join(self.given)} {self.family} {self.dob})"


def _age_weight(age: int) -> float:
    return by_age(age, ((60, 1.0), (70, 0.95), (80, 0.75), (90, 0.35)), 0.06 * (101 - age) / 11)


_ADULT_AGES = Pool(list(range(18, 101)), [_age_weight(a) for a in range(18, 101)])
_N_GIVEN = {"NL": Pool((1, 2, 3), (0.35, 0.45, 0.20)), "NO": Pool((1, 2, 3), (0.6, 0.35, 0.05))}
_N_KIDS = Pool((1, 2, 3, 4), (0.35, 0.42, 0.17, 0.06))


def _household_kind(rng: Random, age: int) -> str:
    r = rng.random()
    if age <= 25:
        return "single" if r < 0.7 else "couple" if r < 0.95 else "family"
    if age <= 45:
        return "single" if r < 0.3 else "couple" if r < 0.5 else "family" if r < 0.92 else "single_parent"
    if age <= 64:
        return "single" if r < 0.3 else "couple" if r < 0.65 else "family" if r < 0.93 else "single_parent"
    return "single" if r < 0.45 else "couple"


class PopulationBuilder:
    """Builds the persons of one chunk at a time; national-ID state carries over between chunks."""

    def __init__(self, *, country: str, seed: int, noise: NoiseConfig) -> None:
        self.country = country
        self.seed = seed
        self.noise = noise
        self.names: NameBook = name_book(country)
        self.places: Gazetteer = gazetteer(country)
        self._fnr = FodselsnummerAllocator(seed=seed) if country == "NO" else None

    def chunk(self, *, index: int, count: int, first: int) -> list[Person]:
        """`count` persons with global indexes first..first+count-1, from the chunk's own random stream."""
        rng = Random(f"population:{self.seed}:{self.country}:{index}")
        people: list[Person] = []
        while len(people) < count:
            people.extend(self._household(rng))
        del people[count:]
        for offset, p in enumerate(people):
            g = first + offset
            p.pid = f"P{g + 1:07d}"
            if self._fnr is None:
                p.national_id = bsn_for(g, seed=self.seed)
            else:
                p.national_id = self._fnr.allocate(p.dob, p.sex)
        return people

    # -- one household -------------------------------------------------------------------------------------

    def _household(self, rng: Random) -> list[Person]:
        head_age = _ADULT_AGES.pick(rng)
        kind = _household_kind(rng, head_age)
        head = self._adult(rng, "M" if rng.random() < 0.5 else "F", head_age, self.names.surname(rng))
        adults = [head]
        if kind in ("couple", "family"):
            adults.append(self._partner(rng, head))
        kids = self._children(rng, adults) if kind in ("family", "single_parent") else []
        members = adults + kids
        self._settle(rng, members, adults)
        for p in members:
            self._contact_and_fate(rng, p)
        return members

    def _given(self, rng: Random, sex: str, birth_year: int, avoid: set[str] = frozenset()) -> tuple[str, ...]:
        pool = self.names.given_pool(rng, sex, birth_year)
        n = _N_GIVEN[self.country].pick(rng)
        out: list[str] = []
        for _ in range(n * 4):
            name = pool.pick(rng)
            if name not in out and (out or name not in avoid):
                out.append(name)
                if len(out) == n:
                    break
        return tuple(out)

    def _adult(self, rng: Random, sex: str, age: int, family: str) -> Person:
        dob = _fromordinal(years_ago(age + rng.random()))
        p = Person(sex, self._given(rng, sex, dob.year), family, dob)
        if self.country == "NO" and rng.random() < 0.15:
            p.middle = self.names.surname(rng)
        p.birth_place = self.places.birthplace(rng, self.names.foreign_birthplaces)
        return p

    def _partner(self, rng: Random, head: Person) -> Person:
        opposite = rng.random() < 0.95
        sex = ("F" if head.sex == "M" else "M") if opposite else head.sex
        shift = 2 if head.sex == "M" and opposite else -2 if opposite else 0
        age = max(18, min(100, head.age - shift + round(rng.gauss(0, 3))))
        partner = self._adult(rng, sex, age, self.names.surname(rng))
        married = rng.random() < (0.35 if head.age < 30 else 0.65 if head.age < 50 else 0.8)
        if married:
            earliest = add_years(max(head.dob, partner.dob).toordinal(), 18)
            on = _fromordinal(between(rng, min(max(earliest, years_ago(55)), REF - 30), REF - 30))
            head.married_on = partner.married_on = on
            if rng.random() < self.noise.marriage_name_change:
                if opposite:
                    wife, husband = (head, partner) if head.sex == "F" else (partner, head)
                    changer, keeper = (wife, husband) if rng.random() < 0.9 else (husband, wife)
                else:
                    changer, keeper = partner, head
                changer.family = keeper.family
        return partner

    def _name_giver(self, rng: Random, adults: list[Person]) -> Person:
        """The parent whose (birth) family name the children carry."""
        if len(adults) == 1:
            return adults[0]
        a, b = adults
        if a.name_changed != b.name_changed:
            return b if a.name_changed else a
        men = [p for p in adults if p.sex == "M"]
        if len(men) == 1 and rng.random() < 0.9:
            return men[0]
        return a if rng.random() < 0.5 else b

    def _children(self, rng: Random, adults: list[Person]) -> list[Person]:
        youngest = min(p.age for p in adults)
        oldest_kid = min(24, youngest - 19)
        if oldest_kid < 0:
            return []
        giver = self._name_giver(rng, adults)
        family = giver.birth_family if len(adults) > 1 or rng.random() < 0.8 else self.names.surname(rng)
        other = next((p for p in adults if p is not giver), None)
        kids: list[Person] = []
        used: set[str] = {p.given[0] for p in adults}
        n = _N_KIDS.pick(rng)
        same_name = rng.random() < self.noise.parent_child_same_name and giver.age >= 38
        for i in range(n):
            if i == 0 and same_name:
                age = rng.randint(18, min(35, giver.age - 20))
                dob = _fromordinal(years_ago(age + rng.random()))
                kid = Person(giver.sex, giver.given, giver.family, dob)  # "Jan de Vries" junior
                kid.middle = giver.middle
            else:
                sex = "M" if rng.random() < 0.51 else "F"
                dob = _fromordinal(years_ago(rng.randint(0, oldest_kid) + rng.random()))
                kid = Person(sex, self._given(rng, sex, dob.year, used), family, dob)
                if self.country == "NO" and other is not None and other.birth_family != family and rng.random() < 0.4:
                    kid.middle = other.birth_family
            used.add(kid.given[0])
            kids.append(kid)
        if rng.random() < self.noise.twins and not (same_name and n == 1):
            kids.append(self._twin(rng, kids[-1], used))
        return kids

    def _twin(self, rng: Random, sibling: Person, used: set[str]) -> Person:
        """A twin of `sibling`: same family name, birth date and address, different given names."""
        sex = sibling.sex if rng.random() < 0.65 else ("F" if sibling.sex == "M" else "M")
        pairs = self.names.twin_names[sex]
        if sex == sibling.sex and rng.random() < 0.5:
            first, second = pairs[rng.randrange(len(pairs))]
            sibling.given = (first, *sibling.given[1:]) if first not in sibling.given[1:] else (first,)
            given = (second,)
        else:
            given = self._given(rng, sex, sibling.dob.year, used | {sibling.given[0]})
        twin = Person(sex, given, sibling.family, sibling.dob)
        twin.middle = sibling.middle
        used.add(given[0])
        return twin

    # -- where they live, how to reach them, whether they are still alive ----------------------------------

    def _settle(self, rng: Random, members: list[Person], adults: list[Person]) -> None:
        address = self.places.address(rng)
        earliest = add_years(min(p.dob for p in adults).toordinal(), 18)
        moved = rng.random() < 0.42
        if moved:
            moved_in = between(rng, max(earliest, years_ago(7)), REF - 20)
            same_town = rng.random() < 0.65
            prev = self.places.address(rng, self.places.by_name[address.city] if same_town else None)
        else:
            moved_in = between(rng, earliest, REF - 20)
            prev = None
        for p in members:
            p.address = address
            born = p.dob.toordinal()
            if born >= moved_in:
                p.moved_in = p.dob
                p.birth_place = p.birth_place or (address.city if rng.random() < 0.6 else "")
            else:
                p.moved_in = _fromordinal(moved_in)
                p.prev_address = prev
            if not p.birth_place:
                p.birth_place = self.places.birthplace(rng, self.names.foreign_birthplaces)

    def _contact_and_fate(self, rng: Random, p: Person) -> None:
        if p.age >= 18 and rng.random() < (0.85 if p.age < 70 else 0.45):
            p.email = self._email(rng, p)
        if p.age >= 13 and rng.random() < 0.9:
            if self.country == "NL":
                p.phone = f"06{rng.randrange(10**8):08d}"
            else:
                p.phone = f"{rng.choice('49')}{rng.randrange(10**7):07d}"
        age = p.age
        risk = 0.001 if age < 50 else 0.008 if age < 70 else 0.04 if age < 85 else 0.12
        if rng.random() < risk:
            lo = max(p.dob.toordinal() + 1, years_ago(5), p.moved_in.toordinal())
            p.died_on = _fromordinal(between(rng, lo, REF - 1))

    def _email(self, rng: Random, p: Person) -> str:
        first = email_part(p.given[0])
        last = email_part(p.family)
        r = rng.random()
        if r < 0.4:
            local = f"{first}.{last}"
        elif r < 0.6:
            local = f"{first[0]}{last}"
        elif r < 0.8:
            local = f"{first}{last}{p.dob.year % 100:02d}"
        else:
            local = f"{first}{rng.randint(1, 999)}"
        return f"{local}@{self.names.email_domains.pick(rng)}"
