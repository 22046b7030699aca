"""The plan's creates and updates as one Superset import bundle, sent in one request.

`POST /api/v1/assets/import/` with `sparse=true` imports exactly the files in the bundle, in one
database transaction, and resolves references to objects already in Superset by UUID. So apply
writes exactly what the plan lists, all or nothing: a failure (or a kill) leaves Superset as it was.

Files reference each other by UUID (dataset -> database, chart -> dataset, dashboard -> charts and
filter datasets); ids inside the payloads are placeholders the importer maps back through UUIDs.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import yaml

from pfill.urls import parse_url

from .desired import TEMPORAL, DesiredObject, DesiredState, masked_uri

ROOT = "pfill_bundle"
VERSION = "1.0.0"
SUPERSET_TYPES = {"string": "STRING", "integer": "INTEGER", "decimal": "DECIMAL", "float": "FLOAT",
                  "boolean": "BOOLEAN", "date": "DATE", "datetime": "DATETIME"}


def placeholder_ids(state: DesiredState, live_ids: dict[str, int]) -> dict[str, int]:
    """An id for every object: the live one where it exists, else a stand-in the importer replaces."""
    ids = dict(live_ids)
    for number, obj in enumerate(state.objects, start=1):
        ids.setdefault(obj.uuid, 900_000_000 + number)
    return ids


def _database(obj: DesiredObject, ids: dict[str, int]) -> dict[str, Any]:
    """The database, its password inside the file: Superset writes the import's form fields (its
    `passwords` field included) to its action log in plain text, but never the uploaded bundle."""
    payload = obj.payload(ids)
    url = payload["sqlalchemy_uri"]
    config = {
        "database_name": payload["database_name"],
        "sqlalchemy_uri": masked_uri(url),
        "cache_timeout": None,
        "expose_in_sqllab": payload["expose_in_sqllab"],
        "allow_run_async": payload["allow_run_async"],
        "allow_ctas": False,
        "allow_cvas": False,
        "allow_dml": payload["allow_dml"],
        "allow_file_upload": False,
        "extra": {"metadata_params": {}, "engine_params": {}, "metadata_cache_timeout": {},
                  "schemas_allowed_for_file_upload": []},
        "is_managed_externally": True,
        "external_url": payload["external_url"],
        "uuid": obj.uuid,
        "version": VERSION,
    }
    if password := parse_url(url).password:
        config["password"] = password
    return config


def _dataset(obj: DesiredObject, ids: dict[str, int], database_uuid: str) -> dict[str, Any]:
    payload = obj.payload(ids)
    assert obj.query is not None
    return {
        "table_name": payload["table_name"],
        "main_dttm_col": None,
        "description": payload["description"] or None,
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "catalog": None,
        "schema": payload["schema"],
        "sql": payload["sql"],
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": json.loads(payload["extra"]),
        "normalize_columns": False,
        "always_filter_main_dttm": False,
        "is_managed_externally": True,
        "external_url": payload["external_url"],
        "uuid": obj.uuid,
        "metrics": [],
        # the declared columns: lint proves they are exactly what the SQL selects
        "columns": [
            {"column_name": c.name, "verbose_name": None, "is_dttm": c.type in TEMPORAL, "is_active": True,
             "type": SUPERSET_TYPES.get(c.type, "STRING"), "groupby": True, "filterable": True, "expression": "",
             "description": c.description or None, "python_date_format": None, "extra": None}
            for c in obj.query.columns
        ],
        "version": VERSION,
        "database_uuid": database_uuid,
    }


def _chart(obj: DesiredObject, ids: dict[str, int], dataset_uuid: str) -> dict[str, Any]:
    payload = obj.payload(ids)
    return {
        "slice_name": payload["slice_name"],
        "description": payload["description"],
        "certified_by": payload["certified_by"],
        "certification_details": payload["certification_details"],
        "viz_type": payload["viz_type"],
        "params": json.loads(payload["params"]),
        "query_context": payload["query_context"],
        "cache_timeout": None,
        "is_managed_externally": True,
        "external_url": payload["external_url"],
        "uuid": obj.uuid,
        "version": VERSION,
        "dataset_uuid": dataset_uuid,
    }


def _dashboard(obj: DesiredObject, ids: dict[str, int], dataset_uuids: dict[int, str]) -> dict[str, Any]:
    payload = obj.payload(ids)
    metadata = json.loads(payload["json_metadata"])
    for native in metadata.get("native_filter_configuration", []):
        for target in native.get("targets", []):
            target["datasetUuid"] = dataset_uuids[target.pop("datasetId")]
    return {
        "dashboard_title": payload["dashboard_title"],
        "description": None,
        "css": payload["css"],
        "slug": payload["slug"],
        "certified_by": payload["certified_by"],
        "certification_details": payload["certification_details"],
        "published": payload["published"],
        "is_managed_externally": True,
        "external_url": payload["external_url"],
        "uuid": obj.uuid,
        "position": json.loads(payload["position_json"]),
        "metadata": metadata,
        "version": VERSION,
    }


def build_bundle(state: DesiredState, objects: list[DesiredObject], live_ids: dict[str, int]) -> bytes:
    """A zip holding `objects` (and nothing else), database passwords included."""
    ids = placeholder_ids(state, live_ids)
    database_uuid = state.database.uuid
    datasets = {o.name: o.uuid for o in state.by_kind("dataset")}
    dataset_uuids = {ids[uuid]: uuid for uuid in datasets.values()}  # ids of one kind are unique
    files: dict[str, dict[str, Any]] = {}
    for obj in objects:
        path = f"{obj.kind}s/{obj.uuid}.yaml"
        if obj.kind == "database":
            files[path] = _database(obj, ids)
        elif obj.kind == "dataset":
            files[path] = _dataset(obj, ids, database_uuid)
        elif obj.kind == "chart":
            files[path] = _chart(obj, ids, datasets[obj.dataset_name or ""])
        else:
            files[path] = _dashboard(obj, ids, dataset_uuids)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as bundle:
        bundle.writestr(f"{ROOT}/metadata.yaml", yaml.safe_dump({"version": VERSION, "type": "assets"}))
        for path, config in files.items():
            # JSON is YAML, and Python writes it many times faster than a YAML emitter
            bundle.writestr(f"{ROOT}/{path}", json.dumps(config))
    return buffer.getvalue()
