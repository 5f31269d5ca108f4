"""Words a user has never heard of stay out of the product.

The projects fluxqueue's API follows are named (FluxQueue's Rust worker, FastWorker, streaq,
django-simple-queue); an in-house word such as "seed" tells a reader nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = [ROOT / "fluxqueue", ROOT / "docs", ROOT / "plugins", ROOT / "README.md"]
TEXT_SUFFIXES = {".py", ".md", ".toml", ".lua", ".txt", ".cfg", ".ini", ".yml", ".yaml", ""}
FORBIDDEN = re.compile(r"\bseed", re.IGNORECASE)


def product_files() -> list[Path]:
    found: list[Path] = []
    for place in PRODUCT:
        paths = [place] if place.is_file() else sorted(place.rglob("*"))
        for path in paths:
            parts = set(path.relative_to(ROOT).parts)
            if parts & {"__pycache__", ".venv", "build", "dist"} or any(
                part.endswith(".egg-info") for part in parts
            ):
                continue
            if path.is_file() and path.suffix in TEXT_SUFFIXES:
                found.append(path)
    return found


def test_the_product_files_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in product_files()}
    assert {"README.md", "fluxqueue/cli/options.py", "docs/cli.md"} <= names


def test_no_seed_wording_in_code_docs_or_plugins() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in product_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if FORBIDDEN.search(line)
    ]
    assert hits == [], "name the project (e.g. FluxQueue's Rust worker) instead:\n" + "\n".join(
        hits
    )


def test_the_check_catches_the_word() -> None:
    assert FORBIDDEN.search("Redis URL (the Seed's flag)")
    assert not FORBIDDEN.search("FluxQueue's Rust worker")
