"""Name reference data per country: surname and given-name pools, nicknames, twin names, email domains."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from random import Random

from faker.providers.person import nl_NL as faker_nl
from faker.providers.person import no_NO as faker_no

from citizen_view_synth.pool import Pool, ranked

# Dutch surname prefixes (tussenvoegsels), longest first so "van der" wins over "van".
NL_PREFIXES: tuple[str, ...] = (
    "van der",
    "van den",
    "van de",
    "van 't",
    "van het",
    "in 't",
    "van",
    "de",
    "den",
    "der",
    "ter",
    "ten",
    "te",
    "'t",
)

_NL_COMMON_PLAIN = (
    "Jansen",
    "Bakker",
    "Janssen",
    "Visser",
    "Smit",
    "Meijer",
    "Mulder",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "Dekker",
    "Brouwer",
    "Dijkstra",
    "Smits",
    "Kok",
    "Jacobs",
    "Vermeulen",
    "Schouten",
    "Willems",
    "Hoekstra",
    "Maas",
    "Verhoeven",
    "Koster",
    "Prins",
    "Blom",
    "Huisman",
    "Peeters",
    "Kuipers",
    "Kuiper",
    "Postma",
    "Timmermans",
    "Groen",
    "Schipper",
    "Wouters",
    "Hermans",
    "Gerritsen",
    "Evers",
    "Martens",
    "Verbeek",
    "Jonker",
    "Scholten",
    "Kramer",
    "Molenaar",
    "Veenstra",
    "Hofman",
    "Koning",
    "Bosman",
    "Willemsen",
    "Wolters",
)
_NL_COMMON_PREFIXED = (
    "de Jong",
    "de Vries",
    "van den Berg",
    "van Dijk",
    "de Boer",
    "de Groot",
    "van Leeuwen",
    "de Wit",
    "de Graaf",
    "van der Meer",
    "van der Linden",
    "de Haan",
    "van den Heuvel",
    "van der Veen",
    "van den Broek",
    "de Bruijn",
    "de Bruin",
    "van der Heijden",
    "van Beek",
    "van Vliet",
    "van de Ven",
    "van Dam",
    "van der Wal",
    "de Jonge",
    "van Wijk",
    "de Vos",
    "de Lange",
    "van der Laan",
    "de Koning",
    "van den Bosch",
    "ten Brink",
    "ter Haar",
    "ten Have",
    "van der Berg",
    "ter Horst",
    "ten Hoeve",
    "van 't Hof",
    "ter Beek",
    "den Hartog",
    "van Rijn",
)
_NL_TRAD_MALE = (
    "Johannes",
    "Cornelis",
    "Hendrik",
    "Jan",
    "Willem",
    "Gerrit",
    "Pieter",
    "Jacobus",
    "Petrus",
    "Theodorus",
    "Antonius",
    "Adrianus",
    "Hendrikus",
    "Wilhelmus",
    "Franciscus",
    "Gerardus",
    "Martinus",
    "Nicolaas",
    "Dirk",
    "Klaas",
    "Jacob",
    "Albertus",
    "Johan",
    "Kees",
    "Henk",
    "Piet",
    "Gerard",
    "Peter",
    "Hans",
    "Wim",
    "Rob",
    "Frank",
    "Marcel",
    "Erik",
    "Paul",
    "Arie",
    "Jeroen",
    "Dennis",
    "Maarten",
    "Bas",
    "Sebastiaan",
    "Alexander",
)
_NL_TRAD_FEMALE = (
    "Maria",
    "Johanna",
    "Anna",
    "Cornelia",
    "Wilhelmina",
    "Catharina",
    "Hendrika",
    "Elisabeth",
    "Geertruida",
    "Adriana",
    "Petronella",
    "Margaretha",
    "Jacoba",
    "Aaltje",
    "Grietje",
    "Neeltje",
    "Alida",
    "Gerda",
    "Ingrid",
    "Monique",
    "Marja",
    "Annemarie",
    "Anita",
    "Sandra",
    "Linda",
    "Ria",
    "Els",
    "Karin",
    "Wilma",
    "Yvonne",
    "Susanna",
    "Isabella",
    "Charlotte",
)
_NL_MODERN_MALE = (
    "Daan",
    "Sem",
    "Lucas",
    "Levi",
    "Finn",
    "Noah",
    "Milan",
    "Luuk",
    "Bram",
    "Thomas",
    "Jesse",
    "Tim",
    "Lars",
    "Thijs",
    "Ruben",
    "Sander",
    "Mark",
    "Kevin",
    "Stijn",
    "Niels",
    "Jasper",
    "Daniel",
    "Max",
    "Julian",
    "Sven",
)
_NL_MODERN_FEMALE = (
    "Emma",
    "Julia",
    "Sophie",
    "Tess",
    "Anna",
    "Lisa",
    "Sanne",
    "Fleur",
    "Eva",
    "Lotte",
    "Anne",
    "Iris",
    "Femke",
    "Laura",
    "Noa",
    "Sara",
    "Lieke",
    "Mila",
    "Zoë",
    "Nina",
    "Lise",
    "Daphne",
    "Esther",
    "Maud",
    "Isa",
)

_NO_COMMON_SURNAMES = (
    "Hansen",
    "Johansen",
    "Olsen",
    "Larsen",
    "Andersen",
    "Pedersen",
    "Nilsen",
    "Kristiansen",
    "Jensen",
    "Karlsen",
    "Johnsen",
    "Pettersen",
    "Eriksen",
    "Berg",
    "Haugen",
    "Hagen",
    "Johannessen",
    "Andreassen",
    "Jacobsen",
    "Dahl",
    "Jørgensen",
    "Halvorsen",
    "Henriksen",
    "Lund",
    "Sørensen",
    "Jakobsen",
    "Moen",
    "Gundersen",
    "Iversen",
    "Strand",
    "Solberg",
    "Svendsen",
    "Eide",
    "Knutsen",
    "Martinsen",
    "Paulsen",
    "Bakken",
    "Kristensen",
    "Mathisen",
    "Lie",
    "Amundsen",
    "Nguyen",
    "Rasmussen",
    "Ali",
    "Lunde",
    "Solheim",
    "Berge",
    "Moe",
    "Nygård",
    "Bakke",
    "Kristoffersen",
    "Fredriksen",
    "Holm",
    "Lien",
    "Myhre",
    "Andresen",
    "Knudsen",
    "Aas",
    "Haugland",
    "Thorsen",
    "Løken",
    "Næss",
    "Strøm",
    "Ødegård",
    "Sæther",
    "Bøe",
    "Rønning",
    "Håland",
    "Sæbø",
    "Bråthen",
    "Østby",
)
_NO_EXTRA_SURNAMES = (
    "Kjær",
    "Grønvold",
    "Børresen",
    "Mørk",
    "Tønnessen",
    "Bjørnstad",
    "Sætre",
    "Grønli",
    "Røed",
    "Nærland",
    "Hølen",
    "Sørlie",
    "Kleppe",
    "Øien",
    "Ås",
    "Åsheim",
    "Lønning",
    "Fløtten",
    "Brøndbo",
    "Gjærde",
    "Vågen",
    "Hågensen",
    "Rørvik",
    "Kvåle",
    "Dæhli",
    "Sørheim",
    "Nordmann",
    "Skogen",
    "Fjeld",
    "Bjørge",
)
_NO_TRAD_MALE = (
    "Ole",
    "Olav",
    "Jan",
    "Per",
    "Bjørn",
    "Kjell",
    "Arne",
    "Knut",
    "Svein",
    "Hans",
    "Geir",
    "Terje",
    "Tor",
    "Odd",
    "Rolf",
    "Kristoffer",
    "Johannes",
    "Harald",
    "Håkon",
    "Kåre",
    "Jørgen",
    "Asbjørn",
    "Torbjørn",
    "Øivind",
    "Øystein",
    "Ragnar",
    "Sigurd",
    "Halvor",
    "Thorvald",
    "Leif",
    "Einar",
    "Egil",
    "Gunnar",
    "Nils",
    "Karl",
    "Erling",
    "Trygve",
    "Åge",
    "Pål",
    "Bjørnar",
)
_NO_TRAD_FEMALE = (
    "Anne",
    "Inger",
    "Kari",
    "Marit",
    "Ingrid",
    "Liv",
    "Eva",
    "Berit",
    "Astrid",
    "Bjørg",
    "Hilde",
    "Anna",
    "Solveig",
    "Randi",
    "Gerd",
    "Ragnhild",
    "Åse",
    "Sigrid",
    "Gunn",
    "Turid",
    "Karin",
    "Else",
    "Grete",
    "Ingeborg",
    "Margrethe",
    "Johanne",
    "Kristine",
    "Karoline",
    "Gudrun",
    "Synnøve",
    "Torunn",
    "Sølvi",
    "Åshild",
    "Målfrid",
    "Bodil",
    "Tove",
    "Unni",
    "Wenche",
    "Elisabeth",
    "Cathrine",
)
_NO_MODERN_MALE = (
    "Jakob",
    "Emil",
    "Noah",
    "Oliver",
    "Filip",
    "William",
    "Lucas",
    "Henrik",
    "Aksel",
    "Theodor",
    "Johannes",
    "Ludvig",
    "Magnus",
    "Isak",
    "Tobias",
    "Sander",
    "Markus",
    "Jonas",
    "Mathias",
    "Kristian",
    "Håkon",
    "Sondre",
    "Sindre",
    "Martin",
    "Andreas",
    "Marius",
    "Eirik",
    "Håvard",
    "Bjørn",
    "Jørgen",
    "Christian",
    "Alexander",
)
_NO_MODERN_FEMALE = (
    "Nora",
    "Emma",
    "Sofie",
    "Ella",
    "Olivia",
    "Ada",
    "Sara",
    "Frida",
    "Ingrid",
    "Maja",
    "Leah",
    "Thea",
    "Ida",
    "Hedda",
    "Selma",
    "Tiril",
    "Vilde",
    "Emilie",
    "Julie",
    "Ingeborg",
    "Amalie",
    "Hanna",
    "Mathilde",
    "Mia",
    "Silje",
    "Ine",
    "Marte",
    "Martine",
    "Kristine",
    "Camilla",
    "Cecilie",
    "Synne",
    "Tuva",
    "Åsne",
    "Linnea",
    "Elisabeth",
)

# Formal name -> informal forms people and clerks use instead.
NICKNAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "NL": {
        "Johannes": ("Jan", "Hans", "Johan", "Joop"),
        "Cornelis": ("Kees", "Cor"),
        "Hendrik": ("Henk", "Henny"),
        "Hendrikus": ("Henk", "Rik"),
        "Willem": ("Wim", "Pim"),
        "Wilhelmus": ("Wim", "Willem"),
        "Jacobus": ("Jaap", "Koos"),
        "Jacob": ("Jaap", "Koos"),
        "Petrus": ("Piet", "Peter"),
        "Pieter": ("Piet",),
        "Theodorus": ("Theo", "Ruud"),
        "Antonius": ("Toon", "Ton", "Anton"),
        "Adrianus": ("Arie", "Adri", "Janus"),
        "Franciscus": ("Frans", "Frank"),
        "Gerardus": ("Gerard", "Gert"),
        "Martinus": ("Martin", "Tinus"),
        "Nicolaas": ("Klaas", "Niek"),
        "Alexander": ("Alex", "Sander"),
        "Sebastiaan": ("Bas",),
        "Bastiaan": ("Bas",),
        "Daniel": ("Daan", "Danny"),
        "Matthijs": ("Thijs",),
        "Benjamin": ("Ben",),
        "Thomas": ("Tom",),
        "Samuel": ("Sam",),
        "Lucas": ("Luuk",),
        "Albertus": ("Bert", "Ab"),
        "Maria": ("Marie", "Mia", "Ria"),
        "Johanna": ("Jo", "Hanneke", "Annie"),
        "Wilhelmina": ("Willy", "Mien", "Wil"),
        "Catharina": ("Tineke", "Karin", "Toos"),
        "Cornelia": ("Corrie", "Cor", "Nelleke"),
        "Elisabeth": ("Els", "Lies", "Betty"),
        "Hendrika": ("Riek", "Rika"),
        "Margaretha": ("Greet", "Margriet"),
        "Geertruida": ("Truus", "Trudy"),
        "Petronella": ("Nel", "Nelly"),
        "Adriana": ("Ria", "Adrie"),
        "Jacoba": ("Coby", "Co"),
        "Anna": ("Anneke", "Annie"),
        "Isabella": ("Bella", "Isa"),
        "Charlotte": ("Lotte",),
        "Susanna": ("Suus", "Sanne"),
        "Annemarie": ("Anne", "Marieke"),
    },
    "NO": {
        "Kristoffer": ("Kris", "Stoffer"),
        "Christian": ("Chris",),
        "Alexander": ("Alex",),
        "Johannes": ("Johs", "Hans", "Jo"),
        "Thomas": ("Tom", "Tommy"),
        "Fredrik": ("Fred", "Freddy"),
        "Kristian": ("Kris",),
        "Olav": ("Ola", "Ole"),
        "Torbjørn": ("Tobben", "Bjørn"),
        "Mathias": ("Matti",),
        "Tobias": ("Tobbe",),
        "Theodor": ("Teo",),
        "Ludvig": ("Lu",),
        "Håkon": ("Haakon",),
        "Bjørnar": ("Bjørn",),
        "Elisabeth": ("Lisa", "Elise", "Beth"),
        "Karoline": ("Line", "Karo"),
        "Kristine": ("Stine", "Kine"),
        "Cathrine": ("Kari", "Trine"),
        "Margrethe": ("Grete", "Maggi"),
        "Ingeborg": ("Inga", "Bojo"),
        "Johanne": ("Hanne", "Jo"),
        "Ragnhild": ("Ragna",),
        "Sigrid": ("Siri",),
        "Synnøve": ("Synne",),
        "Mathilde": ("Tilde",),
        "Cecilie": ("Cille",),
        "Amalie": ("Malle",),
        "Emilie": ("Emmi",),
    },
}

# Given-name pairs parents like for twins: close enough to fool a fuzzy matcher.
TWIN_NAMES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "NL": {
        "M": (
            ("Daan", "Daniel"),
            ("Tim", "Tom"),
            ("Sem", "Sam"),
            ("Luuk", "Luc"),
            ("Thijs", "Tijs"),
            ("Jesse", "Jelle"),
            ("Bram", "Bas"),
            ("Ruben", "Robin"),
        ),
        "F": (
            ("Lisa", "Lise"),
            ("Anna", "Anne"),
            ("Emma", "Emmy"),
            ("Femke", "Fenna"),
            ("Sanne", "Sanna"),
            ("Noa", "Nora"),
            ("Lotte", "Lotta"),
        ),
    },
    "NO": {
        "M": (
            ("Jon", "Jonas"),
            ("Ola", "Ole"),
            ("Kristian", "Kristoffer"),
            ("Eirik", "Erik"),
            ("Sander", "Sindre"),
            ("Håkon", "Håvard"),
            ("Magnus", "Markus"),
        ),
        "F": (
            ("Anne", "Anna"),
            ("Marte", "Martine"),
            ("Ida", "Ina"),
            ("Thea", "Tea"),
            ("Silje", "Sille"),
            ("Ingrid", "Ingri"),
        ),
    },
}

EMAIL_DOMAINS: dict[str, tuple[str, ...]] = {
    "NL": ("gmail.com", "hotmail.com", "outlook.com", "ziggo.nl", "kpnmail.nl", "live.nl", "xs4all.nl", "planet.nl"),
    "NO": ("gmail.com", "hotmail.com", "online.no", "outlook.com", "yahoo.no", "live.no", "icloud.com", "broadpark.no"),
}

FOREIGN_BIRTHPLACES: dict[str, tuple[str, ...]] = {
    "NL": ("Paramaribo", "Istanbul", "Rabat", "Antwerpen", "Berlin", "Willemstad", "Jakarta", "Warschau", "Londen"),
    "NO": ("Stockholm", "København", "Göteborg", "Warszawa", "Berlin", "Mogadishu", "Manila", "London", "Vilnius"),
}


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
    """The country's name pools (Faker's locale lists plus hand-written common names), Zipf-weighted."""
    if country == "NL":
        fk = faker_nl.Provider
        plain = ranked(_NL_COMMON_PLAIN, fk.last_names, shuffle_seed="nl-surnames", keep=_plain_word)
        prefixed = ranked(_NL_COMMON_PREFIXED, fk.last_names, shuffle_seed="nl-prefixed", keep=_nl_prefixed)
        trad = {"M": _NL_TRAD_MALE, "F": _NL_TRAD_FEMALE}
        modern = {"M": _NL_MODERN_MALE, "F": _NL_MODERN_FEMALE}
        faker_given = {"M": fk.first_names_male, "F": fk.first_names_female}
        prefixed_pool: Pool[str] | None = Pool.zipf(prefixed, offset=10.0)
        share = 0.25
    elif country == "NO":
        fk = faker_no.Provider
        plain = ranked(
            _NO_COMMON_SURNAMES, (*fk.last_names, *_NO_EXTRA_SURNAMES), shuffle_seed="no-surnames", keep=_plain_word
        )
        trad = {"M": _NO_TRAD_MALE, "F": _NO_TRAD_FEMALE}
        modern = {"M": _NO_MODERN_MALE, "F": _NO_MODERN_FEMALE}
        faker_given = {"M": fk.first_names_male, "F": fk.first_names_female}
        prefixed_pool = None
        share = 0.0
    else:
        raise ValueError(f"unsupported country {country!r} (expected NL or NO)")
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
        nicknames=NICKNAMES[country],
        twin_names=TWIN_NAMES[country],
        email_domains=Pool.zipf(EMAIL_DOMAINS[country], offset=1.0),
        foreign_birthplaces=FOREIGN_BIRTHPLACES[country],
    )
