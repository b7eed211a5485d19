"""Profiles (``params/<profile>.yaml``) and the values a chapter runs with.

A profile file has two sections::

    common:            # values for every chapter that declares the name (others skip it)
      dataset: mnist
    chapters:
      03_depth_study: {n_seeds: 400, width: 800}   # values for one chapter; unknown names are errors

A chapter's values are, in order of precedence: ``-p NAME VALUE`` on the command line, its section
of the profile, the profile's ``common`` section, and the defaults of its spec (the quick profile,
:mod:`pretraining.chapters`). ``profile`` itself is the file's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .specs import ChapterSpec

__all__ = ["ProfileError", "PROFILE_KEYS", "available_profiles", "load_profile", "chapter_values",
           "parse_value"]

PROFILE_KEYS = ("common", "chapters")


class ProfileError(Exception):
    """A profile file or a command-line value is wrong; the message says how (one line each)."""


def available_profiles(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / "params").glob("*.yaml"))


def load_profile(root: Path, profile: str, chapters: Sequence[str]) -> dict[str, Any]:
    """Read and check ``params/<profile>.yaml``: ``{"common": {...}, "chapters": {stem: {...}}}``.

    ``chapters``: the chapter stems of the book (a section for another name is an error).
    """
    profiles = available_profiles(root)
    if profile not in profiles:
        raise ProfileError(f"unknown profile {profile!r}; the profiles are: {', '.join(profiles) or 'none'} "
                           f"(files params/<profile>.yaml)")
    path = root / "params" / f"{profile}.yaml"
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: expected a mapping with the keys {', '.join(PROFILE_KEYS)}")
    unknown = set(data) - set(PROFILE_KEYS)
    if unknown:
        raise ProfileError(f"{path}: unknown top-level key(s) {', '.join(sorted(map(str, unknown)))}; "
                           f"allowed: {', '.join(PROFILE_KEYS)}")
    common = data.get("common") or {}
    sections = data.get("chapters") or {}
    if not isinstance(common, dict) or not isinstance(sections, dict):
        raise ProfileError(f"{path}: 'common' and 'chapters' must be mappings")
    for stem, section in sections.items():
        if stem not in chapters:
            raise ProfileError(f"{path}: chapter section {stem!r} is not a chapter of _toc.yml; "
                               f"the chapters are: {', '.join(chapters)}")
        if section is not None and not isinstance(section, dict):
            raise ProfileError(f"{path}: chapters.{stem} must be a mapping of parameter: value")
    if "profile" in common or any("profile" in (s or {}) for s in sections.values()):
        raise ProfileError(f"{path}: 'profile' is set by the profile's file name, not inside it")
    return {"common": common, "chapters": {k: (v or {}) for k, v in sections.items()}}


def chapter_values(spec: ChapterSpec, profile: str, prof: dict[str, Any],
                   overrides: Sequence[tuple[str, Any]], profile_file: str) -> tuple[dict, dict]:
    """(all values, the values that differ from the spec's defaults) of one chapter.

    ``overrides`` are the ``-p`` pairs that this chapter declares (the caller decides what to do
    with the others). An unknown name in the chapter's profile section is a :class:`ProfileError`.
    """
    declared = spec.all_params
    values = spec.defaults()
    values["profile"] = profile
    values.update({k: v for k, v in prof["common"].items() if k in declared})
    for k, v in prof["chapters"].get(spec.name, {}).items():
        if k not in declared:
            raise ProfileError(f"{profile_file}: chapters.{spec.name}.{k}: {spec.name} has no parameter "
                               f"{k!r}; its parameters are: {', '.join(declared)}")
        values[k] = v
    values.update(dict(overrides))
    defaults = spec.defaults()
    changed = {k: v for k, v in values.items() if k == "profile" or v != defaults[k]}
    return values, changed


def parse_value(text: str) -> Any:
    """A ``-p`` value: YAML (``3``, ``0.5``, ``[1, 2]``, ``true``), else the text itself."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
