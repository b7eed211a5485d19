"""Profiles (``params/<profile>.yaml``) and the values a chapter runs with.

A profile file has two sections::

    common:            # values for every chapter that declares the name (others skip it)
      dataset: mnist
    chapters:
      03_depth_study: {n_seeds: 400, width: 800}   # values for one chapter; unknown names are errors

A chapter's values are, in order of precedence: ``-p NAME VALUE`` on the command line, its section
of the profile, the profile's ``common`` section, and the defaults of its spec (the quick profile,
:mod:`pretraining.chapters`). ``profile`` itself is the file's name.

Profiles and ``-p`` values are read with the YAML 1.2 core schema (:func:`parse_yaml`): ``010`` is
the integer 10 (no octal), ``1:30`` a string (no sexagesimal), ``yes``/``no``/``on``/``off`` strings
(only ``true``/``false`` are booleans), ``1e3`` the float 1000.0; a key given twice is an error; a
syntax error is one line with the file, line and column.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .specs import ChapterSpec

__all__ = ["ProfileError", "PROFILE_KEYS", "available_profiles", "load_profile", "chapter_values", "profile_values",
           "parse_value", "parse_yaml"]

PROFILE_KEYS = ("common", "chapters")


class ProfileError(Exception):
    """A profile file or a command-line value is wrong; the message says how (one line each)."""


class _Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema's scalars and no duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`; explicit keys may override it
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (first on line {seen[key] + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _core_schema(loader: type[yaml.SafeLoader]) -> None:
    loader.yaml_implicit_resolvers = {
        k: [(tag, rx) for tag, rx in v if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int",
                                                      "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp")]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    rules = (("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
             ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
             ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                         r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."))
    for tag, rx, first in rules:
        loader.add_implicit_resolver(tag, re.compile(rx), list(first))


_core_schema(_Yaml12Loader)


def _int(loader, node):
    text = loader.construct_scalar(node)
    base = 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10
    return int(text[2:] if base != 10 else text, base)


def _float(loader, node):
    text = loader.construct_scalar(node).lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _float)


def parse_yaml(text: str, where: str) -> Any:
    """``text`` parsed with the YAML 1.2 core schema; :class:`ProfileError` (one line) if it is not YAML."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark is not None else where
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(f"{at}: {problem}") from None


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
    data = parse_yaml(path.read_text(), str(path)) or {}
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


def parse_value(name: str, text: str) -> Any:
    """A ``-p`` value, read as YAML 1.2 (``3``, ``010`` = 10, ``0.5``, ``[1, 2]``, ``true``); a plain word
    is the string itself; text that starts like YAML but is broken is a one-line :class:`ProfileError`."""
    return parse_yaml(text, f"-p {name} {text!r}")


def profile_values(root: Path, spec: ChapterSpec, profile: str) -> dict[str, Any]:
    """All of a chapter's values for ``profile`` (the spec's defaults, the profile file's common and
    chapter values), canonical, as ``python -m pretraining run --profile`` gives them to the chapter
    (not checked against the rules: e.g. the memory of this machine)."""
    from .site import toc_chapter_stems

    values, _ = chapter_values(spec, profile, load_profile(root, profile, toc_chapter_stems(root)), [],
                               f"params/{profile}.yaml")
    return spec.canonical(values)
