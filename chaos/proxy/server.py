"""Toxiproxy 2.x's HTTP API on aiohttp: routes, status codes and JSON as the real server
answers them (see api.go in Shopify/toxiproxy), so its clients work unchanged.

Errors are `{"error": message, "status": code}` with 400/404/409, or 500 for anything
else; like Go's http.Error they go out as text/plain with a trailing newline. Requests
from a browser (User-Agent "Mozilla/...") get 403, against cross-site requests.
"""

import json
import logging
import uuid

from aiohttp import web

from chaos.proxy.errors import ApiError, bad_body
from chaos.proxy.proxy import Proxies, proxy_update

log = logging.getLogger("refproxy")
VERSION = "2.12.0-refproxy"  # the Toxiproxy API version we follow; "-refproxy" says whose
PROXIES = web.AppKey("proxies", Proxies)


def make_app(proxies: Proxies, metrics: bool = False) -> web.Application:
    """The API over `proxies`; /metrics exists only with `metrics` (-proxy-metrics)."""
    app = web.Application(middlewares=[_request_id, _no_browsers, _api_errors])
    app[PROXIES] = proxies
    app.add_routes([
        web.post("/reset", reset),
        web.get("/proxies", proxy_index),
        web.post("/proxies", proxy_create),
        web.post("/populate", populate),
        web.get("/proxies/{proxy}", proxy_show),
        web.post("/proxies/{proxy}", proxy_update_),  # POST is deprecated since 2.6.0, still served
        web.patch("/proxies/{proxy}", proxy_update_),
        web.delete("/proxies/{proxy}", proxy_delete),
        web.get("/proxies/{proxy}/toxics", toxic_index),
        web.post("/proxies/{proxy}/toxics", toxic_create),
        web.get("/proxies/{proxy}/toxics/{toxic}", toxic_show),
        web.post("/proxies/{proxy}/toxics/{toxic}", toxic_update),
        web.patch("/proxies/{proxy}/toxics/{toxic}", toxic_update),
        web.delete("/proxies/{proxy}/toxics/{toxic}", toxic_delete),
        web.get("/version", version),
    ])
    if metrics:
        app.router.add_get("/metrics", metrics_text)
    return app


# -- middlewares
@web.middleware
async def _request_id(request: web.Request, handler):
    response = await handler(request)
    response.headers["X-Toxiproxy-Request-Id"] = uuid.uuid4().hex[:20]
    return response


@web.middleware
async def _no_browsers(request: web.Request, handler):
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(status=403, text="User agent not allowed\n")
    return await handler(request)


@web.middleware
async def _api_errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ApiError as e:
        return _error(e)
    except Exception as e:  # never let one request take the server down
        log.exception("%s %s failed", request.method, request.path)
        return _error(ApiError(str(e)))


def _compact(data) -> str:
    return json.dumps(data, separators=(",", ":"))  # as Go's json.Marshal


def _error(e: ApiError, extra: dict | None = None) -> web.Response:
    return web.Response(status=e.status, text=_compact(e.to_json() | (extra or {})) + "\n")


def _json(data, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_compact(data).encode(),
                        content_type="application/json")


async def _body(request: web.Request):
    raw = await request.read()
    if not raw.strip():
        raise bad_body("EOF")  # what Go's decoder says of an empty body
    try:
        return json.loads(raw)
    except ValueError as e:
        raise bad_body(str(e)) from None


# -- handlers
async def proxy_index(request: web.Request) -> web.Response:
    return _json({name: p.to_json() for name, p in request.app[PROXIES].all().items()})


async def proxy_create(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    body = await _body(request)
    async with proxies.lock:
        proxy = await proxies.create(body)
    return _json(proxy.to_json(), status=201)


async def populate(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    body = await _body(request)
    async with proxies.lock:
        done, error = await proxies.populate(body)
    # Go marshals an empty list of proxies as null, and merges the error in on a failure
    listed = {"proxies": [p.to_json() for p in done] or None}
    return _error(error, listed) if error else _json(listed, status=201)


async def proxy_show(request: web.Request) -> web.Response:
    return _json(request.app[PROXIES].get(request.match_info["proxy"]).to_json())


async def proxy_update_(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    async with proxies.lock:
        proxy = proxies.get(request.match_info["proxy"])
        spec = proxy_update(proxy, await _body(request))
        await proxy.update(spec["listen"], spec["upstream"], spec["enabled"])
    return _json(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    async with proxies.lock:
        proxies.remove(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    return _json(request.app[PROXIES].get(request.match_info["proxy"]).to_json()["toxics"])


async def toxic_create(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    async with proxies.lock:
        proxy = proxies.get(request.match_info["proxy"])
        toxic = proxy.add_toxic(await _body(request))
    return _json(toxic.to_json())  # 200, not 201: as Toxiproxy


async def toxic_show(request: web.Request) -> web.Response:
    proxy = request.app[PROXIES].get(request.match_info["proxy"])
    return _json(proxy.toxic(request.match_info["toxic"]).to_json())


async def toxic_update(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    async with proxies.lock:
        proxy = proxies.get(request.match_info["proxy"])
        toxic = proxy.update_toxic(request.match_info["toxic"], await _body(request))
    return _json(toxic.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    async with proxies.lock:
        proxies.get(request.match_info["proxy"]).remove_toxic(request.match_info["toxic"])
    return web.Response(status=204)


async def reset(request: web.Request) -> web.Response:
    proxies = request.app[PROXIES]
    async with proxies.lock:
        await proxies.reset()
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    return web.Response(text=json.dumps({"version": VERSION}) + "\n", content_type="application/json")


async def metrics_text(request: web.Request) -> web.Response:
    return web.Response(text=request.app[PROXIES].counters.render(), content_type="text/plain")
