"""Which fluxqueue is this? The version and the place on disk of what was imported.

The name ``fluxqueue`` on the public package index belongs to an unrelated project, so
"which fluxqueue is installed" is a real question: ``fluxqueue --version`` and ``fluxqueue
plugins`` answer it with the imported package's version and directory, and the
distribution (name, version, and where pip installed it from) that owns it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import fluxqueue

__all__ = ["Installation", "installation"]

DISTRIBUTION = "fluxqueue"


@dataclass(frozen=True)
class Installation:
    version: str  # fluxqueue.__version__
    package_dir: str  # the directory the fluxqueue package was imported from
    distribution_version: str | None  # what pip recorded, None when not installed by pip
    installed_from: str | None  # direct_url.json: a path, VCS or wheel URL
    editable: bool
    installer: str | None  # who installed it (pip, uv ...): no URL then means an index
    metadata_dir: str | None  # where the distribution's metadata was found

    def describe(self) -> str:
        """One line: ``fluxqueue 1!0.2.0 from /path/fluxqueue (editable install of ...)``."""
        text = f"fluxqueue {self.version} from {self.package_dir}"
        if self.distribution_version is None:
            return f"{text} (not installed as a distribution)"
        how = "editable install" if self.editable else "installed"
        if self.installed_from:
            origin = (
                f" of {self.installed_from}" if self.editable else f" from {self.installed_from}"
            )
        elif self.installer:
            origin = f" from a package index by {self.installer}"
        else:
            how, origin = "distribution", f" with metadata in {self.metadata_dir}"
        mismatch = (
            ""
            if self.distribution_version == self.version
            else f"; but the installed distribution is {self.distribution_version}"
        )
        return f"{text} ({how}{origin}{mismatch})"


def installation() -> Installation:
    """What ``import fluxqueue`` found, and the distribution metadata that goes with it."""
    package_dir = str(Path(fluxqueue.__file__).resolve().parent)
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return Installation(fluxqueue.__version__, package_dir, None, None, False, None, None)
    url, editable = _direct_url(dist)
    installer = (dist.read_text("INSTALLER") or "").strip() or None
    where = str(Path(str(dist.locate_file(""))).resolve())
    return Installation(
        fluxqueue.__version__, package_dir, dist.version, url, editable, installer, where
    )


def _direct_url(dist: metadata.Distribution) -> tuple[str | None, bool]:
    """PEP 610's record of a path, VCS or wheel URL install (absent for an index install)."""
    text = dist.read_text("direct_url.json")
    if not text:
        return None, False
    try:
        data = json.loads(text)
    except ValueError:
        return None, False
    url = data.get("url") if isinstance(data, dict) else None
    vcs = data.get("vcs_info") if isinstance(data, dict) else None
    if isinstance(vcs, dict) and isinstance(url, str):
        commit = vcs.get("commit_id")
        url = f"{vcs.get('vcs', 'vcs')}+{url}" + (f"@{commit}" if commit else "")
    dir_info = data.get("dir_info") if isinstance(data, dict) else None
    editable = isinstance(dir_info, dict) and bool(dir_info.get("editable"))
    return (url if isinstance(url, str) else None), editable
