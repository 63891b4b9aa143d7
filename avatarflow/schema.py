"""The JSON Schema of the manifest, for editors (``# yaml-language-server: $schema=…``)."""

from __future__ import annotations

from typing import Any

from .manifest import Manifest

SCHEMA_ID = "https://avatarflow.dev/schema/manifest-v1.json"


def manifest_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "avatarflow manifest"
    return schema
