"""Reading a TOML config file into a pydantic model, with errors a person can act on.

Strings of the form ``${NAME}`` are replaced by the environment variable NAME, so secrets stay out
of the file. Every problem (TOML syntax, unknown key, wrong type, missing variable) becomes a
:class:`ConfigError` that names the file and the dotted key.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ekinerja.errors import OperatorError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

M = TypeVar("M", bound=BaseModel)


class ConfigError(OperatorError):
    """A config file that cannot be used. ``problems`` holds one line per fault."""

    exit_code = 2

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        """The message printed to the operator."""
        lines = [f"{self.path}: configuration error{'s' if len(self.problems) > 1 else ''}:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _expand_env(value: Any, loc: tuple[Any, ...], problems: list[str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{_key_path(loc)}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*loc, i), problems) for i, v in enumerate(value)]
    return value


# Values of these keys are never repeated in a message: error output ends up in logs and journald.
SECRET_KEYS = frozenset({"token", "token_sha256", "password", "database_url"})


def _file_keys(loc: tuple[Any, ...], raw: Any) -> tuple[Any, ...]:
    """``loc`` as the file spells it: without validator names, and without the ``kind`` tag pydantic
    inserts for a table of a tagged union (``devices[0].zk.port`` is ``devices[0].port`` in the file)."""
    keys: list[Any] = []
    node = raw
    for part in loc:
        if str(part).startswith("function-"):
            continue
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue
        keys.append(part)
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            node = None
    return tuple(keys)


def _describe(error: Any, raw: Any) -> str:
    loc = _file_keys(tuple(error["loc"]), raw)
    key = _key_path(loc)
    kind = error["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):  # the table's kind decides its other keys
        ctx = error.get("ctx", {})
        tag_key = f"{key}.{ctx.get('discriminator', 'kind').strip(chr(39))}"
        if kind == "union_tag_not_found":
            return f"{tag_key}: required key is missing"
        return f"{tag_key}: must be one of {ctx.get('expected_tags')} (got {ctx.get('tag')!r})"
    if kind == "extra_forbidden":
        return f"{key}: unknown key (check its spelling and the section it is in)"
    if kind == "missing":
        return f"{key}: required key is missing"
    given = error.get("input")
    secret = bool(loc) and str(loc[-1]) in SECRET_KEYS
    shown = f" (got {given!r})" if isinstance(given, str | int | float | bool) and not secret else ""
    return f"{key}: {error['msg']}{shown}"


def load_model(path: Path, model: type[M]) -> M:
    """Read ``path`` as TOML, expand ``${ENV}`` references and validate it as ``model``."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot be read: {exc.strerror}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(path, ["is not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [f"invalid TOML: {exc}"]) from None
    problems: list[str] = []
    expanded = _expand_env(raw, (), problems)
    try:
        loaded = model.model_validate(expanded, context={"config_dir": path.parent})
    except ValidationError as exc:
        problems += [_describe(err, expanded) for err in exc.errors()]
        raise ConfigError(path, problems) from None
    if problems:
        raise ConfigError(path, problems)
    return loaded
