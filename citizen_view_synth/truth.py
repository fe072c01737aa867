"""The ground truth: which person every written record belongs to (read by evaluation only, never the pipeline)."""

from __future__ import annotations

from pathlib import Path

README = (
    "Ground truth for the synthetic extracts generated next to this folder. truth.csv has one row per written "
    "record (source, record_id, person_id); a record id that appears twice in an extract (a deliberately "
    "duplicated row) appears twice here too, with the same person. Malformed rows are listed like any other. "
    "The Citizen View pipeline never reads this folder: it exists only so evaluation can score linkage "
    "(precision, recall, cluster quality) against the people the records were generated from.\n"
)


class TruthWriter:
    """Streams truth/truth.csv (UTF-8, header source,record_id,person_id) and writes truth/README.txt."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "truth.csv"
        self.readme = folder / "README.txt"
        self.readme.write_text(README, encoding="utf-8")
        self._fh = open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._fh.write("source,record_id,person_id\n")

    def write(self, source: str, pairs: list[tuple[str, str]]) -> None:
        """Append the (record_id, person_id) pairs of one source's chunk."""
        self._fh.write("".join(f"{source},{rid},{pid}\n" for rid, pid in pairs))

    def close(self) -> None:
        self._fh.close()
