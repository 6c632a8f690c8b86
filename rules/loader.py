"""Load and validate the rule files; a broken file is an error naming the file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from breachflow.rules.schema import Regime
from breachflow.rules.vocab import GROUPS_FILE, RULES_DIR, TIMEZONES_FILE, groups

DATA_FILES = frozenset({GROUPS_FILE.name, TIMEZONES_FILE.name})
#: libyaml's safe loader when PyYAML was built with it (PyPI's wheels are): ten times faster
#: than the pure-Python one on the ~95 rule files, which every assessment reads.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PLACE_KEYS = frozenset(
    {"residence", "home", "of", "per_place", "established_in", "not_established_in"}
)
M = TypeVar("M", bound=BaseModel)


class RuleFileError(ValueError):
    """A rule or policy file that cannot be used: which file, which field, what is wrong."""

    def __init__(self, file: Path | str, field: str, msg: str) -> None:
        self.file = Path(file)
        self.field = field
        self.msg = msg
        super().__init__(f"{self.file}: {field or '(file)'}: {msg}")


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; syntax errors and non-mappings are RuleFileErrors."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=SAFE_LOADER)  # noqa: S506 (a safe loader, C or Python)
    except OSError as exc:
        raise RuleFileError(path, "", f"cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RuleFileError(path, "", f"invalid YAML: {where}{problem}") from exc
    if not isinstance(data, dict):
        raise RuleFileError(path, "", "expected a mapping of keys at the top level")
    return data


def validation_error(path: Path, exc: ValidationError) -> RuleFileError:
    """The first pydantic error as (file, dotted field, message), the rest counted.

    Unknown keys come first: a misspelt key also makes the real one "missing", and the
    misspelling is the error to show.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"])
    msg = first["msg"]
    if "input" in first and first["type"] != "missing" and not isinstance(first["input"], dict):
        msg += f" (got {first['input']!r})"
    if len(errors) > 1:
        others = ", ".join(".".join(str(p) for p in e["loc"]) or "(file)" for e in errors[1:])
        msg += f"; {len(errors) - 1} more error(s) at: {others}"
    return RuleFileError(path, field, msg)


def validate_file(model: type[M], path: Path, data: dict[str, Any]) -> M:
    """Validate ``data`` read from ``path`` as ``model``, or raise a RuleFileError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(path, exc) from exc


def _used_groups(data: object, known: dict[str, list[str]]) -> dict[str, list[str]]:
    """The groups a rule file names, so that a snapshot of the regime carries its members."""
    used: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            if key in PLACE_KEYS and isinstance(value, list):
                used |= {v: known[v] for v in value if isinstance(v, str) and v in known}
            else:
                used |= _used_groups(value, known)
    elif isinstance(data, list):
        for item in data:
            used |= _used_groups(item, known)
    return used


def load_regime(path: Path) -> Regime:
    """One rule file as a validated Regime; its ``id`` must equal the file name."""
    data = read_yaml(path)
    if "groups" not in data:
        data["groups"] = _used_groups(data, groups())
    regime = validate_file(Regime, path, data)
    if regime.id != path.stem:
        raise RuleFileError(path, "id", f"id {regime.id!r} does not match the file name")
    return regime


def _rule_files(directory: Path) -> dict[str, Path]:
    if not directory.is_dir():
        raise RuleFileError(directory, "", "not a directory")
    return {p.stem: p for p in sorted(directory.glob("*.yaml")) if p.name not in DATA_FILES}


def load_rules(directory: Path = RULES_DIR, *, overrides: Path | None = None) -> list[Regime]:
    """Every regime in ``directory``, the ``policy`` first, then by id.

    ``overrides``: a directory of the operator's own rule files; a file there replaces the
    file of the same name (this is how an operator changes a U default: copy the file, edit
    it, keep the citation honest), and a new name adds a regime.
    """
    files = _rule_files(Path(directory))
    if overrides is not None:
        files |= _rule_files(Path(overrides))
    regimes = [load_regime(path) for path in files.values()]
    promises = [r.id for r in regimes if r.promise is not None]
    if len(promises) > 1:
        raise RuleFileError(files[promises[1]], "promise", f"only one policy regime: {promises}")
    return sorted(regimes, key=lambda r: (r.promise is None, r.id))
