"""The pinned versions (constraints.txt) are the ones pyproject's ranges admit, for every
direct dependency, so an install with the constraints and one without agree on what is tested."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_every_direct_dependency_is_pinned_inside_its_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    required = project["dependencies"] + project["optional-dependencies"]["dev"]
    for text in required:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        if name == "torch":  # installed first by scripts/setup.sh, never constrained
            assert name not in pins
            continue
        assert name in pins, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}=={pins[name]} is outside pyproject's range {req.specifier}"
        assert req.specifier.filter([pins[name]]) and "<" in str(req.specifier), \
            f"{req.name} has no upper bound"
