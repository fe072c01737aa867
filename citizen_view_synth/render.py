"""`Renderer`: writes a person's attributes the way one source's clerks would, with that source's noise."""

from __future__ import annotations

from random import Random

from citizen_view_synth.names import NameBook
from citizen_view_synth.noise import NoiseConfig, case_change, mistype_id, typo, whitespace_change
from citizen_view_synth.people import Person
from citizen_view_synth.places import Address, Gazetteer
from citizen_view_synth.spelling import ascii_fold, prefix_variant

_PHONE_STYLES = {
    "NL": ("{p}", "{p}", "{a}-{b}", "{a} {b}", "+31{m}", "+31 {m1} {b}"),
    "NO": ("{p}", "{p}", "{x} {y} {z}", "+47 {p}", "+47{p}", "{w}"),
}


class Renderer:
    """One source's pen: per-record decisions (ASCII spelling, stale address, middle-name placement) plus
    per-field noise at the source's (already scaled) `NoiseConfig` rates."""

    def __init__(
        self,
        rng: Random,
        noise: NoiseConfig,
        *,
        names: NameBook,
        places: Gazetteer,
        married_forms: bool = True,
        stale_addresses: bool = True,
        ascii_factor: float = 1.0,
    ) -> None:
        self.rng = rng
        self.noise = noise
        self.country = names.country
        self.names = names
        self.places = places
        self.married_forms = married_forms
        self.stale_addresses = stale_addresses
        self._ascii_rate = min(1.0, noise.ascii_spelling * ascii_factor)
        self._fold: bool | None = None  # None: keep diacritics; False: ø -> o; True: ø -> oe
        self._middle_to: str = ""

    # -- per record ----------------------------------------------------------------------------------------

    def begin(self) -> None:
        """Decide the record-level habits: ASCII spelling and where a Norwegian middle name ends up."""
        rng = self.rng
        self._fold = (rng.random() < 0.5) if rng.random() < self._ascii_rate else None
        if self.country == "NO":
            r = rng.random()
            self._middle_to = "family" if r < 0.3 else "given" if r < 0.5 else ""

    def missing(self) -> bool:
        """True when an optional field should be left empty."""
        return self.rng.random() < self.noise.missing_field

    def fold(self, s: str) -> str:
        """The value in this record's spelling (ASCII or not)."""
        return s if self._fold is None else ascii_fold(s, long=self._fold)

    def text(self, s: str) -> str:
        """Typo, case and whitespace noise on a free-text value."""
        rng, noise = self.rng, self.noise
        if rng.random() < noise.typo:
            s = typo(rng, s)
        if rng.random() < noise.case_noise:
            s = case_change(rng, s)
        if rng.random() < noise.whitespace:
            s = whitespace_change(rng, s)
        return s

    # -- names ---------------------------------------------------------------------------------------------

    def given(self, p: Person, *, all_names: bool, with_middle: bool = True) -> str:
        """Given names (all or only the call name), sometimes a nickname, sometimes with the middle name."""
        rng = self.rng
        names = list(p.given) if all_names else [p.given[0]]
        nick = self.names.nicknames.get(p.given[0])
        if nick and rng.random() < self.noise.nickname:
            short = nick[rng.randrange(len(nick))]
            names = [short] if rng.random() < 0.5 else [short, *names[1:]]
        if with_middle and p.middle and self._middle_to == "given":
            names.append(p.middle)
        return self.text(self.fold(" ".join(names)))

    def family(self, p: Person, *, with_middle: bool = True, natural: bool = False, comma: bool = True) -> str:
        """Family name; married-name forms, Dutch prefix variants, the NO middle name in front, noise.

        `natural`: the name follows the given names ("Jan de Vries"), so no inverted prefix forms;
        `comma`: the inverted form may contain a comma ("Berg, van der").
        """
        rng = self.rng
        name = p.family
        if self.married_forms and p.name_changed:
            r = rng.random()
            if self.country == "NL":
                name = p.family if r < 0.5 else f"{p.family}-{p.birth_family}" if r < 0.8 else p.birth_family
            elif r >= 0.8:
                name = p.birth_family
        if self.country == "NL" and name[0].islower() and rng.random() < self.noise.prefix_variant:
            name = prefix_variant(rng, name, inverted=not natural, comma=comma)
        if with_middle and p.middle and self._middle_to == "family":
            name = f"{p.middle} {name}"
        return self.text(self.fold(name))

    # -- identifiers and dates -----------------------------------------------------------------------------

    def national_id(self, p: Person) -> str:
        """The national ID, sometimes mistyped."""
        if self.rng.random() < self.noise.transposed_id:
            return mistype_id(self.rng, p.national_id)
        return p.national_id

    def dob(self, p: Person) -> tuple[int, int, int]:
        """(year, month, day) of birth, sometimes with day and month swapped."""
        d = p.dob
        if d.day <= 12 and d.day != d.month and self.rng.random() < self.noise.swapped_day_month:
            return d.year, d.day, d.month
        return d.year, d.month, d.day

    # -- addresses and contact -----------------------------------------------------------------------------

    def address(self, p: Person) -> Address:
        """The current address, or the previous one when this source never heard of the move."""
        prev = p.prev_address
        if self.stale_addresses and prev is not None and self.rng.random() < self.noise.moved:
            return prev
        return p.address

    def street(self, a: Address) -> str:
        """Street name with spelling and noise."""
        return self.text(self.fold(a.street))

    def house_number(self, a: Address, *, with_unit: bool) -> str:
        """House number, with the unit appended in one of the usual ways when `with_unit`."""
        if not with_unit or not a.unit or self.missing():
            return a.number
        unit = a.unit
        r = self.rng.random()
        if unit.isdigit() or len(unit) > 1:
            return f"{a.number}-{unit}" if r < 0.5 else f"{a.number} {unit}"
        return f"{a.number}{unit}" if r < 0.6 else f"{a.number} {unit}" if r < 0.85 else f"{a.number}-{unit}"

    def unit(self, a: Address) -> str:
        """The unit on its own (empty when none or missing)."""
        return "" if not a.unit or self.missing() else a.unit

    def postcode(self, a: Address, *, spaced: bool) -> str:
        """Postcode in the source's usual shape ("1234 AB" / "1234AB"), sometimes in another one or missing."""
        if self.missing():
            return ""
        pc = a.postcode
        odd = self.rng.random() < self.noise.postcode_format
        if self.country == "NO":
            return pc.lstrip("0") if odd and pc.startswith("0") else pc
        if odd:
            spaced = not spaced
            if self.rng.random() < 0.4:
                pc = pc.lower()
        return f"{pc[:4]} {pc[4:]}" if spaced else pc

    def city(self, a: Address) -> str:
        """Municipality name, sometimes under an alias, with spelling and noise."""
        city = a.city
        alias = self.places.aliases.get(city)
        if alias and self.rng.random() < self.noise.city_alias:
            city = alias[self.rng.randrange(len(alias))]
        return self.text(self.fold(city))

    def phone(self, p: Person, *, style: int | None = None) -> str:
        """Phone number in a fixed `style` index or a random one of the country's usual styles; '' if none."""
        if not p.phone or self.missing():
            return ""
        styles = _PHONE_STYLES[self.country]
        fmt = styles[style if style is not None else self.rng.randrange(len(styles))]
        n = p.phone
        return fmt.format(
            p=n, a=n[:2], b=n[2:], m=n[1:], m1=n[1], x=n[:3], y=n[3:5], z=n[5:], w=f"{n[:2]} {n[2:4]} {n[4:6]} {n[6:]}"
        )

    def email(self, p: Person) -> str:
        """Email address, sometimes missing or in capitals."""
        if not p.email or self.missing():
            return ""
        if self.rng.random() < self.noise.case_noise:
            return p.email.upper() if self.rng.random() < 0.3 else p.email[0].upper() + p.email[1:]
        return p.email
