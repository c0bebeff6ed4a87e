"""``gcp-storage-emulator`` with the two parts of the GCS protocol that tensorstore relies on.

Run as ``python tests/gcs_emulator.py start --port P ...`` (the emulator's own arguments).  Before
the emulator builds its routes, two handlers are wrapped:

* a download answers with ``x-goog-generation`` / ``x-goog-metageneration`` headers, as GCS
  does; tensorstore (orbax's array writer) reads an object's generation from them and otherwise
  fails with "Malformed StorageGeneration";
* an upload honours ``ifGenerationMatch`` (``0``: only if the object does not exist), answering
  412 when the precondition fails, as GCS does; tensorstore's OCDBT manifests and our gs://
  writers rely on it.

The emulator serves one request at a time, so a check and the write after it cannot interleave.
"""

from __future__ import annotations

import sys
from http import HTTPStatus

from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_download, _insert = objects.download, objects.insert


def _generation(storage, bucket: str, name: str) -> str | None:
    try:
        return storage.get_file_obj(bucket, name)["generation"]
    except NotFound:
        return None


def download(request, response, storage, *args, **kwargs):
    _download(request, response, storage, *args, **kwargs)
    try:
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except NotFound:
        return
    response["x-goog-generation"] = obj["generation"]
    response["x-goog-metageneration"] = obj["metageneration"]


def insert(request, response, storage, *args, **kwargs):
    wanted = request.query.get("ifGenerationMatch")
    if wanted:
        name = request.query["name"][0] if "name" in request.query else request.data["meta"].get("name")
        current = _generation(storage, request.params["bucket_name"], name) or "0"
        if wanted[0] != current:
            response.status = HTTPStatus.PRECONDITION_FAILED
            response.json(
                {"error": {"code": 412, "message": "At least one of the pre-conditions you specified did not hold."}}
            )
            return None
    return _insert(request, response, storage, *args, **kwargs)


objects.download, objects.insert = download, insert

if __name__ == "__main__":
    from gcp_storage_emulator.__main__ import main

    main(sys.argv[1:])
