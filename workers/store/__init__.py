"""Vector store for items: a ``base`` and a ``rec`` cosine vector per item, in Qdrant.

:func:`open_store` picks the backend from a URL; every backend implements
:class:`VectorStore`.
"""

from __future__ import annotations

from pathlib import Path

from workers.store.base import (
    Hit,
    ItemPoint,
    SearchRequest,
    StoreError,
    VectorStore,
    point_id,
)

__all__ = [
    "URL_FORMS",
    "Hit",
    "ItemPoint",
    "SearchRequest",
    "StoreError",
    "VectorStore",
    "open_store",
    "point_id",
]

#: The store URLs :func:`open_store` accepts, for messages and help texts.
URL_FORMS = (
    "edge:<dir> or edge://<dir> (in-process Qdrant Edge shard in <dir>/<collection>, "
    "e.g. edge:///abs/dir or edge:relative/dir)",
    "local::memory: (qdrant-client local mode in memory)",
    "local:<dir> (qdrant-client local mode persisted in <dir>)",
    "http://host:port or https://host:port (Qdrant server)",
)


def _strip_slashes(rest: str) -> str:
    return rest[2:] if rest.startswith("//") else rest


def _bad_url(url: str, why: str) -> ValueError:
    forms = "\n  ".join(URL_FORMS)
    return ValueError(f"invalid store URL {url!r}: {why}; accepted forms:\n  {forms}")


def open_store(
    url: str,
    *,
    dim: int,
    collection: str = "items",
    api_key: str | None = None,
    ca_file: Path | None = None,
) -> VectorStore:
    """Open (creating if needed) the store at ``url`` for vectors of size ``dim``.

    * ``edge:<dir>`` / ``edge://<dir>``: :class:`~workers.store.edge.EdgeStore`, a
      persistent in-process Qdrant Edge shard in the directory ``<dir>/<collection>``.
    * ``local::memory:``: qdrant-client local mode in memory (lost on close).
    * ``local:<dir>``: qdrant-client local mode persisted in ``<dir>``.
    * ``http://...`` / ``https://...``: a Qdrant server (``api_key`` optional; ``ca_file``:
      the CA that signed an https server's certificate, else the system's).

    Raises ``ValueError`` for any other URL and :class:`StoreError` if the store
    cannot be opened or holds a collection with another dimension.
    """
    if not collection or "/" in collection or collection in (".", ".."):
        raise ValueError(f"invalid collection name {collection!r}")
    if url.startswith("edge:"):
        from workers.store.edge import EdgeStore

        directory = _strip_slashes(url[len("edge:") :])
        if not directory:
            raise _bad_url(url, "no directory given")
        return EdgeStore(Path(directory) / collection, dim=dim)

    from workers.store.qdrant_client_store import QdrantClientStore

    if url == "local::memory:":
        return QdrantClientStore(dim=dim, collection=collection, location=":memory:")
    if url.startswith("local:"):
        directory = _strip_slashes(url[len("local:") :])
        if not directory or directory.startswith(":"):
            raise _bad_url(url, "no directory given")
        return QdrantClientStore(dim=dim, collection=collection, path=directory)
    if url.startswith(("http://", "https://")):
        if url.rstrip("/") in ("http:", "https:"):
            raise _bad_url(url, "no host given")
        return QdrantClientStore(
            dim=dim, collection=collection, url=url, api_key=api_key, ca_file=ca_file
        )
    raise _bad_url(url, "unknown scheme")
