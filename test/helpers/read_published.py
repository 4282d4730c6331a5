"""A downstream reader of recforge's published output on S3, written the way the README tells pyarrow users to:
follow `_current.json` to the live version, read its `_manifest.json`, check every listed file's bytes and sha256,
then read the version folder as a Parquet dataset (pyarrow skips `_fallback/` and `_report/`, whose names start
with '_'). It uses only pyarrow, never recforge code, so the tests check the contract rather than the writer.

Usage: read_published.py OUTPUT_URI   (s3://bucket/prefix/output/recommendations/<dataset>)
Endpoint and keys come from the standard AWS variables (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ...).
Prints one JSON object: version, manifest check results, rows, users, columns, per-user row counts summary.
"""
import hashlib
import json
import os
import sys
from urllib.parse import urlparse

import pyarrow.dataset as ds
import pyarrow.fs as pafs


def main() -> None:
    uri = sys.argv[1].rstrip("/")
    endpoint = urlparse(os.environ["AWS_ENDPOINT_URL_S3"]) if os.environ.get("AWS_ENDPOINT_URL_S3") else None
    s3 = pafs.S3FileSystem(
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        region=os.environ.get("AWS_REGION", "us-east-1"),
        endpoint_override=endpoint.netloc if endpoint else None,
        scheme=endpoint.scheme if endpoint else "https",
    )
    base = uri[len("s3://") :]

    def read(rel: str) -> bytes:
        with s3.open_input_stream(f"{base}/{rel}") as f:
            return f.read()

    pointer = json.loads(read("_current.json"))
    manifest = json.loads(read(pointer["manifest"]))
    folder = pointer["path"]
    checked = []
    for entry in manifest["files"] + [manifest["fallback"]]:
        body = read(f"{folder}/{entry['path']}")
        checked.append(
            {
                "path": entry["path"],
                "bytesOk": len(body) == entry["bytes"],
                "sha256Ok": hashlib.sha256(body).hexdigest() == entry["sha256"],
            }
        )
    table = ds.dataset(f"{base}/{folder}", filesystem=s3, format="parquet").to_table()
    users = table.group_by("user_id").aggregate([("rank", "count"), ("rank", "min"), ("rank", "max")])
    counts = users.column("rank_count").to_pylist()
    listed = sorted(info.path.rsplit("/", 1)[1] for info in s3.get_file_info(pafs.FileSelector(f"{base}/{folder}")))
    print(
        json.dumps(
            {
                "version": pointer["version"],
                "manifestVersion": manifest["modelVersion"],
                "checked": checked,
                "listed": listed,
                "rows": table.num_rows,
                "users": users.num_rows,
                "columns": table.schema.names,
                "minRowsPerUser": min(counts) if counts else 0,
                "maxRowsPerUser": max(counts) if counts else 0,
                "minRank": min(users.column("rank_min").to_pylist(), default=0),
                "maxRank": max(users.column("rank_max").to_pylist(), default=0),
            }
        )
    )


main()
