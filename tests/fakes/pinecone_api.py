"""A local Pinecone data plane (upsert, query, delete, list, stats) and the control-plane routes
that find or create an index, in memory, for the real pinecone client in tests."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer

DEFAULT_NAMESPACE = "__default__"
LIST_PAGE = 100  # ids per page of /vectors/list unless `limit` says otherwise
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BODY = web.RequestKey("body", dict[str, Any])


@dataclass
class Stored:
    values: list[float]
    metadata: dict[str, Any]


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any]
    query: dict[str, str]
    headers: dict[str, str]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


@dataclass
class FakePinecone(FakeServer):
    """Start with `await fake.start()`; point the client at `fake.url` with `fake.api_key`.

    One index (`index_name`) served on the same port as the control plane; it exists from the
    start unless `index_exists` is False, then a create request makes it. `fail_paths` answer
    500 (retried by the client, so prefer a wrong key for fast failures).
    """

    api_key: str = "pc-test-key"
    index_name: str = "suara"
    index_exists: bool = True
    dimension: int | None = None
    namespaces: dict[str, dict[str, Stored]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    fail_paths: set[str] = field(default_factory=set)
    created: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.origin

    def requests(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    def ids(self, namespace: str = "") -> set[str]:
        return set(self.namespaces.get(namespace or DEFAULT_NAMESPACE, {}))

    def vector(self, vector_id: str, namespace: str = "") -> Stored:
        return self.namespaces[namespace or DEFAULT_NAMESPACE][vector_id]

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._middleware])
        app.router.add_post("/vectors/upsert", self._upsert)
        app.router.add_post("/query", self._query)
        app.router.add_post("/vectors/delete", self._delete)
        app.router.add_get("/vectors/list", self._list)
        app.router.add_post("/describe_index_stats", self._stats)
        app.router.add_get("/indexes/{name}", self._describe_index)
        app.router.add_post("/indexes", self._create_index)
        return app

    # --- plumbing --------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: dict[str, Any] = await request.json() if request.body_exists else {}
        self.calls.append(
            Call(request.method, request.path, body, dict(request.query), dict(request.headers))
        )
        if request.headers.get("Api-Key") != self.api_key:
            return self._error(401, "UNAUTHENTICATED", "Invalid API Key")
        if request.path in self.fail_paths:
            return self._error(500, "INTERNAL", "the fake was told to fail")
        request[BODY] = body
        return await handler(request)

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"error": {"code": code, "message": message}, "status": status}, status=status
        )

    def _namespace(self, name: str | None) -> dict[str, Stored]:
        return self.namespaces.setdefault(name or DEFAULT_NAMESPACE, {})

    def _index_model(self, schema: Any, deployment: Any) -> dict[str, Any]:
        return {
            "name": self.index_name,
            "host": self.url,
            "status": {"ready": True, "state": "Ready"},
            "schema": schema,
            "deployment": deployment,
            "deletion_protection": "disabled",
            "tags": None,
        }

    # --- data plane --------------------------------------------------------------------------
    async def _upsert(self, request: web.Request) -> web.Response:
        body = request[BODY]
        namespace = self._namespace(body.get("namespace"))
        for vector in body["vectors"]:
            values = [float(v) for v in vector["values"]]
            if self.dimension is None:
                self.dimension = len(values)
            if len(values) != self.dimension:
                message = f"Vector dimension {len(values)} does not match the dimension of the index {self.dimension}"  # noqa: E501
                return self._error(400, "INVALID_ARGUMENT", message)
            namespace[vector["id"]] = Stored(values, dict(vector.get("metadata") or {}))
        return web.json_response({"upsertedCount": len(body["vectors"])})

    async def _query(self, request: web.Request) -> web.Response:
        body = request[BODY]
        query = [float(v) for v in body["vector"]]
        if self.dimension is not None and len(query) != self.dimension:
            message = f"Vector dimension {len(query)} does not match the dimension of the index {self.dimension}"  # noqa: E501
            return self._error(400, "INVALID_ARGUMENT", message)
        stored = self.namespaces.get(body.get("namespace") or DEFAULT_NAMESPACE, {})
        scored = sorted(
            ((cosine(query, s.values), vector_id) for vector_id, s in stored.items()),
            key=lambda pair: (-pair[0], pair[1]),
        )
        matches = []
        for score, vector_id in scored[: int(body["topK"])]:
            match: dict[str, Any] = {"id": vector_id, "score": score, "values": []}
            if body.get("includeValues"):
                match["values"] = stored[vector_id].values
            if body.get("includeMetadata"):
                match["metadata"] = stored[vector_id].metadata
            matches.append(match)
        return web.json_response(
            {
                "matches": matches,
                "namespace": body.get("namespace", ""),
                "usage": {"readUnits": 1},
            }
        )

    async def _delete(self, request: web.Request) -> web.Response:
        body = request[BODY]
        namespace = self._namespace(body.get("namespace"))
        if body.get("deleteAll"):
            namespace.clear()
        for vector_id in body.get("ids") or []:
            namespace.pop(vector_id, None)
        return web.json_response({})

    async def _list(self, request: web.Request) -> web.Response:
        namespace = request.query.get("namespace") or DEFAULT_NAMESPACE
        prefix = request.query.get("prefix", "")
        limit = int(request.query.get("limit", LIST_PAGE))
        ids = sorted(i for i in self.namespaces.get(namespace, {}) if i.startswith(prefix))
        start = int(request.query.get("paginationToken", "0"))
        page = ids[start : start + limit]
        body: dict[str, Any] = {
            "vectors": [{"id": vector_id} for vector_id in page],
            "namespace": request.query.get("namespace", ""),
            "usage": {"readUnits": 1},
        }
        if start + limit < len(ids):
            body["pagination"] = {"next": str(start + limit)}
        return web.json_response(body)

    async def _stats(self, request: web.Request) -> web.Response:
        counts = {name: len(vectors) for name, vectors in self.namespaces.items() if vectors}
        return web.json_response(
            {
                "namespaces": {name: {"vectorCount": n} for name, n in counts.items()},
                "dimension": self.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": sum(counts.values()),
                "metric": "cosine",
                "vectorType": "dense",
            }
        )

    # --- control plane -----------------------------------------------------------------------
    async def _describe_index(self, request: web.Request) -> web.Response:
        if request.match_info["name"] != self.index_name or not self.index_exists:
            return self._error(404, "NOT_FOUND", f"Resource {request.match_info['name']} not found")
        values = {"type": "dense_vector", "dimension": self.dimension, "metric": "cosine"}
        schema = {"fields": {"values": values}}
        deployment = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}
        if self.created:
            schema = self.created[-1].get("schema", schema)
            deployment = self.created[-1].get("deployment", deployment)
        return web.json_response(self._index_model(schema, deployment))

    async def _create_index(self, request: web.Request) -> web.Response:
        body = request[BODY]
        if body.get("name") != self.index_name:
            return self._error(400, "INVALID_ARGUMENT", "this fake serves one index name")
        if self.index_exists:
            return self._error(409, "ALREADY_EXISTS", "Resource already exists")
        self.created.append(body)
        self.index_exists = True
        return web.json_response(
            self._index_model(body.get("schema"), body.get("deployment")), status=201
        )
