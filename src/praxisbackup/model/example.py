"""The commented example configuration and the JSON schema, both generated from the schema in
:mod:`praxisbackup.model.config` - one source of truth, so the example cannot drift from what
the program accepts (a test parses it and checks that every key is in it).

Rules: a key's description becomes its comment; its value is the field's example if it has
one, else its default. Keys and sections whose default is "not set" are written commented out
(with their example), except sections marked ``x-example: "active"``. Arrays of tables are
written from the field's example entries; keys those entries do not use follow the first entry
as commented lines, so every key is documented.
"""

from __future__ import annotations

import json
import textwrap
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from praxisbackup.model.config import Config

WIDTH = 100


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if "\\" in value and "'" not in value and "\n" not in value:
            return f"'{value}'"  # literal string: Windows paths read as they are
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def _comment(text: str | None, prefix: str = "") -> list[str]:
    if not text:
        return []
    body = " ".join(text.split())
    return textwrap.wrap(
        body, WIDTH - 2 - len(prefix), initial_indent=f"{prefix}# ", subsequent_indent=f"{prefix}# "
    )


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class of ``Model`` or ``Model | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return None


def _list_model_of(annotation: Any) -> type[BaseModel] | None:
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        return _model_of(item)
    return None


def _example(field: FieldInfo) -> Any:
    if field.examples:
        return field.examples[0]
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def _is_unset_default(field: FieldInfo) -> bool:
    return not field.is_required() and field.default_factory is None and field.default is None


def _marked(field: FieldInfo, how: str) -> bool:
    """Sections marked ``x-example: active`` are written active although unset by default;
    arrays marked ``commented`` are written commented out although they have examples."""
    extra = field.json_schema_extra
    return isinstance(extra, dict) and extra.get("x-example") == how


def _key_lines(name: str, field: FieldInfo, value: Any, commented: bool) -> list[str]:
    lines = _comment(field.description)
    if value is None:
        return [*lines, f'# {name} = ""']
    lines.append(f"{'# ' if commented else ''}{name} = {_toml(value)}")
    return lines


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {n: f for n, f in model.model_fields.items() if f.exclude is not True}


class _Writer:
    """Writes the schema as TOML. Without ``config`` (the example) values are the fields'
    examples; with a ``config`` (what ``setup`` writes) they are the configuration's values,
    and what is not set is shown commented out, with its example, as documentation."""

    def __init__(self, config: Config | None) -> None:
        self.values: dict[str, Any] | None = (
            None if config is None else config.model_dump(mode="json", exclude={"path"})
        )

    @property
    def example(self) -> bool:
        return self.values is None

    def section(
        self,
        model: type[BaseModel],
        header: str | None,
        commented: bool,
        values: dict[str, Any] | None,
        doc: str | None = None,
    ) -> list[str]:
        out: list[str] = []
        c = "# " if commented else ""
        if header is not None:
            out += ["", *_comment(doc or model.__doc__), f"{c}[{header}]"]
        else:
            out += _comment(model.__doc__)
        nested: list[str] = []
        for name, field in _fields(model).items():
            path = f"{header}.{name}" if header else name
            sub = _model_of(field.annotation)
            items = _list_model_of(field.annotation)
            own = None if values is None else values.get(name)
            if sub is not None:
                nested += self._sub(sub, path, field, commented, own)
            elif items is not None:
                nested += self._array(items, path, field, commented, own)
            else:
                out += self._scalar(name, field, commented, values, own)
        return out + nested

    def _scalar(
        self,
        name: str,
        field: FieldInfo,
        commented: bool,
        values: dict[str, Any] | None,
        own: Any,
    ) -> list[str]:
        c = "# " if commented else ""
        if self.example or values is None or (own is None and commented):
            value = values[name] if values and name in values else _example(field)
            unset = _is_unset_default(field)
        else:
            value = own if own is not None else _example(field)
            unset = own is None
        return [
            f"{c}{line}" if not line.startswith("#") else line
            for line in _key_lines(name, field, value, unset)
        ]

    def _sub(
        self, sub: type[BaseModel], path: str, field: FieldInfo, commented: bool, own: Any
    ) -> list[str]:
        example = field.examples[0] if field.examples else None
        if self.example:
            off = commented or (_is_unset_default(field) and not _marked(field, "active"))
            return self.section(sub, path, off, example, field.description)
        if own is None:  # not configured: its example, commented out
            return _Writer(None).section(sub, path, True, example, field.description)
        return self.section(sub, path, commented, own, field.description)

    def _array(
        self, item: type[BaseModel], path: str, field: FieldInfo, commented: bool, own: Any
    ) -> list[str]:
        fields = _fields(item)
        if self.example or not own:
            entries: list[dict[str, Any]] = list(field.examples[0]) if field.examples else []
            commented = commented or _marked(field, "commented") or not self.example
        else:
            defaults = {n: _default(f) for n, f in fields.items()}
            entries = [
                {k: v for k, v in e.items() if k in fields and v != defaults.get(k, object())}
                for e in own
            ]
        out = ["", *_comment(field.description), *_comment(item.__doc__)]
        c = "# " if commented else ""
        for index, entry in enumerate(entries):
            out.append(f"{c}[[{path}]]")
            for name, value in entry.items():
                described = _comment(fields[name].description) if index == 0 else []
                out += [*described, f"{c}{name} = {_toml(value)}"]
            if index == 0:
                for name, f in fields.items():
                    if name not in entry:
                        out += _key_lines(name, f, _example(f), commented=True)
            out.append("")
        return out[:-1] if entries else out


def _default(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.is_required() else field.default


def _render(config: Config | None) -> str:
    writer = _Writer(config)
    lines = writer.section(Config, None, False, writer.values)
    text = "\n".join(lines).strip() + "\n"
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def example_toml() -> str:
    """The commented example configuration (``praxisbackup config example``)."""
    return _render(None)


def config_toml(config: Config) -> str:
    """A configuration written out with the same comments as the example (``setup``)."""
    return _render(config)


def json_schema() -> str:
    """The JSON schema of the configuration, for editors (``docs/config.schema.json``)."""
    schema = Config.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "praxisbackup configuration"
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
