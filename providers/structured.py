"""Structured output: find the JSON in a model's answer, validate it, and word the one repair request."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from providers.prompts import load_prompt

SchemaArg = type[BaseModel] | dict[str, Any]
# A stage's own checks beyond the schema (e.g. CompanyDNAExtraction.check_against): problems as strings.
Validator = Callable[[Any], list[str]]

_FENCE = re.compile(r"```(?:json|JSON|javascript|js)?\s*\n?(.*?)```", re.DOTALL)
_MAX_PROBLEMS = 20


def json_schema_for(schema: SchemaArg) -> dict[str, Any]:
    if isinstance(schema, dict):
        return schema
    return schema.model_json_schema()


def schema_name(schema: SchemaArg) -> str:
    if isinstance(schema, dict):
        raw = str(schema.get("title") or "response")
    else:
        raw = schema.__name__
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw)[:64] or "response"


def extract_json(text: str) -> Any:
    """The JSON value in `text`: bare, inside a Markdown fence, or with prose around it. ValueError if none."""
    stripped = text.strip().lstrip("\ufeff")
    try:
        return json.loads(stripped)
    except ValueError:
        pass
    for block in _FENCE.findall(stripped):
        try:
            return json.loads(block.strip())
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", stripped):
        try:
            value, _ = decoder.raw_decode(stripped, match.start())
        except ValueError:
            continue
        if isinstance(value, dict | list):
            return value
    raise ValueError("the answer contains no parseable JSON object or array")


def check_output(text: str, schema: SchemaArg, validate: Validator | None = None) -> tuple[Any, list[str]]:
    """(value, []) when `text` holds JSON that satisfies the schema and `validate`; else (None, problems)."""
    try:
        raw = extract_json(text)
    except ValueError as exc:
        return None, [f"not valid JSON: {exc}"]
    value: Any
    if isinstance(schema, dict):
        problems = check_against_json_schema(raw, schema)
        if problems:
            return None, problems[:_MAX_PROBLEMS]
        value = raw
    else:
        try:
            value = schema.model_validate(raw)
        except ValidationError as exc:
            return None, [
                f"{'.'.join(str(part) for part in err['loc']) or '(root)'}: {err['msg']}"
                for err in exc.errors(include_url=False)
            ][:_MAX_PROBLEMS]
    if validate is not None:
        extra = validate(value)
        if extra:
            return None, list(extra)[:_MAX_PROBLEMS]
    return value, []


def repair_prompt(original_prompt: str, previous_output: str, problems: list[str], json_schema: dict[str, Any]) -> str:
    """The one repair request: the task again, the previous answer, and exactly what was wrong with it."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    shown = previous_output if len(previous_output) <= 20_000 else previous_output[:20_000] + "\n...(truncated)"
    # str.replace, not str.format: the prompt and the answer are full of braces.
    text = load_prompt("repair")
    for key, value in (
        ("{json_schema}", json.dumps(json_schema, ensure_ascii=False)),
        ("{problems}", listed),
        ("{previous_output}", shown),
        ("{original_prompt}", original_prompt),
    ):
        text = text.replace(key, value, 1)
    return text


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def check_against_json_schema(
    value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = ""
) -> list[str]:
    """A small JSON-schema check (type, required, properties, items, enum, sizes, $ref, anyOf) for dict schemas."""
    root = root if root is not None else schema
    where = path or "(root)"
    if "$ref" in schema:
        ref = str(schema["$ref"])
        target: Any = root
        for part in ref.removeprefix("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return check_against_json_schema(value, target, root, path)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [check_against_json_schema(value, option, root, path) for option in schema[key]]
            if all(options):
                return [f"{where}: matches none of the allowed shapes ({options[0][0]})"]
            return []
    problems: list[str] = []
    expected = schema.get("type")
    if expected is not None:
        names = expected if isinstance(expected, list) else [expected]
        ok = any(
            isinstance(value, _JSON_TYPES.get(name, (object,)))
            and not (name in ("integer", "number") and isinstance(value, bool))
            for name in names
        )
        if not ok:
            return [f"{where}: expected {'/'.join(names)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                problems.append(f"{where}: missing required field {name!r}")
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                problems += check_against_json_schema(value[name], sub, root, f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: needs at least {schema['minItems']} items, got {len(value)}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: allows at most {schema['maxItems']} items, got {len(value)}")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                problems += check_against_json_schema(item, schema["items"], root, f"{path}[{i}]")
    elif isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{where}: shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{where}: longer than {schema['maxLength']} characters")
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{where}: below the minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{where}: above the maximum {schema['maximum']}")
    return problems
