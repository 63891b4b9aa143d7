"""The JSON Schema of the manifest, for editors (``# yaml-language-server: $schema=…``)."""

from __future__ import annotations

from typing import Any

from .manifest import Manifest

# An identifier, not an address: editors read the schema from the file the manifest's
# first line names (``avatarflow init`` writes it; ``avatarflow schema`` prints it).
SCHEMA_ID = "urn:avatarflow:manifest:v1"


def manifest_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "avatarflow manifest"
    return schema
