"""`synshard serve URI`: a read-only web explorer of a release, like ImageNet's website (Flask).

Pages and their JSON twins (every page's data is also at `/api/...`):

    /                      the synset tree (expandable) and a treemap of the current subtree
    /synset/<wnid>         paged thumbnails, per-split counts, shards to download, dups, rejects
    /image/<key>           the image with its boxes, its record, its dropped near duplicates
    /search?q=             synsets by lemma (and wnid), images by key
    /raw/<key>, /thumb/<key>      the stored image, a small JPEG made on the fly and cached
    /files/<relpath>       a committed file of the release (only paths the manifest lists)

Nothing is written and nothing outside the manifest's files can be served: keys and wnids are
checked against a strict alphabet (a 400 otherwise), unknown ones are a 404, page sizes are
bounded. The server (waitress) binds 127.0.0.1 unless told otherwise.
"""
from __future__ import annotations

import mimetypes
import signal
import threading
from collections import OrderedDict
from importlib import resources
from typing import Any, Callable, Iterator

from flask import Flask, Response, abort, jsonify, redirect, render_template, request, url_for
from jinja2 import DictLoader
from werkzeug.exceptions import HTTPException

from synshard.explore.data import ExploreError, ReleaseView, check_key
from synshard.explore.pages import TEMPLATES
from synshard.shards.access import KeyNotFound
from synshard.shards.layout import ShardError, join
from synshard.shards.release import Release, open_release
from synshard.synsets.hierarchy import load_hierarchy
from synshard.release.thumbnails import THUMBNAIL_ERRORS, jpeg_thumbnail

THUMB_SIDE = 160
THUMB_CACHE = 4096  # thumbnails kept in memory (about 8 KB each)
IMAGE_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "png": "image/png"}
_CHUNK = 1 << 20
SERVER_THREADS = 8  # requests served at once (thumbnails decode; object-store reads wait)


def create_app(release: Release) -> Flask:
    """The explorer's Flask app over an open release."""
    app = Flask(__name__)
    app.jinja_loader = DictLoader(TEMPLATES)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider's
    view = ReleaseView(release, load_hierarchy())
    thumbs = ThumbnailCache(view, THUMB_CACHE)
    app.extensions["synshard_view"] = view
    _add_pages(app, view)
    _add_api(app, view)
    _add_media(app, view, thumbs)
    _add_errors(app)
    return app


def _page(template: str, view: ReleaseView, **data: Any) -> str:
    return render_template(template, release=view.release.manifest.name, **data)


def _add_pages(app: Flask, view: ReleaseView) -> None:
    @app.get("/")
    def tree_page() -> str:
        return _page("tree.html", view, node=view.tree(request.args.get("root")))

    @app.get("/synset/<wnid>")
    def synset_page(wnid: str) -> str:
        args = request.args
        data = view.synset(wnid, args.get("page", 1), args.get("per_page", 60))
        return _page("synset.html", view, s=data)

    @app.get("/image/<key>")
    def image_page(key: str) -> str:
        return _page("image.html", view, img=view.image(key))

    @app.get("/search")
    def search_page() -> Any:
        result = view.search(request.args.get("q", ""))
        if result["keys"]:
            return redirect(url_for("image_page", key=result["keys"][0]))
        return _page("search.html", view, result=result)


def _add_api(app: Flask, view: ReleaseView) -> None:
    @app.get("/api/tree")
    def api_tree() -> Response:
        return jsonify(view.tree(request.args.get("root")))

    @app.get("/api/treemap")
    def api_treemap() -> Response:
        return jsonify(view.treemap(request.args.get("root")))

    @app.get("/api/synset/<wnid>")
    def api_synset(wnid: str) -> Response:
        args = request.args
        return jsonify(view.synset(wnid, args.get("page", 1), args.get("per_page", 60)))

    @app.get("/api/image/<key>")
    def api_image(key: str) -> Response:
        return jsonify(view.image(key))

    @app.get("/api/search")
    def api_search() -> Response:
        return jsonify(view.search(request.args.get("q", "")))

    @app.get("/api/release")
    def api_release() -> Response:
        m = view.release.manifest
        return jsonify({"name": m.name, "created": m.created, "tool_version": m.tool_version,
                        "counts": m.counts, "accounting": m.accounting, "classes": m.classes})


def _add_media(app: Flask, view: ReleaseView, thumbs: "ThumbnailCache") -> None:
    @app.get("/raw/<key>")
    def raw(key: str) -> Response:
        data, fmt = _image(view, key)
        return Response(data, mimetype=IMAGE_TYPES.get(fmt, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/thumb/<key>")
    def thumb(key: str) -> Response:
        data = thumbs.get(check_key(key))
        return Response(data, mimetype="image/jpeg",
                        headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/files/<path:relpath>")
    def files(relpath: str) -> Response:
        if not view.committed(relpath):
            abort(404, description="not a file of this release's manifest")
        name = relpath.rsplit("/", 1)[-1]
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(_stream(view.release, relpath), mimetype=kind,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/static/plotly.min.js")
    def plotly_js() -> Response:
        try:
            js = resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
        except (ModuleNotFoundError, FileNotFoundError):
            abort(404, description="plotly is not installed: no treemap")
        return Response(js, mimetype="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


def _add_errors(app: Flask) -> None:
    def answer(status: int, message: str) -> Any:
        if request.path.startswith("/api/"):
            return jsonify({"error": message, "status": status}), status
        return render_template("error.html", status=status, message=message, release=""), status

    @app.errorhandler(ExploreError)
    def explore_error(exc: ExploreError) -> Any:
        return answer(exc.status, str(exc))

    @app.errorhandler(KeyNotFound)
    def not_found(exc: KeyNotFound) -> Any:
        return answer(404, str(exc))

    @app.errorhandler(ShardError)
    def bad_input(exc: ShardError) -> Any:
        return answer(400, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        return answer(exc.code or 500, exc.description or exc.name)


def _image(view: ReleaseView, key: str) -> tuple[bytes, str]:
    """The stored bytes of an image and its format; 400/404 for bad or unknown keys."""
    key = check_key(key)
    loc = view.reader.locate([key])[key]
    if loc.entry.format == "webdataset":
        ext = loc.row["image_ext"]
        return view.reader.images([key])[key], {"jpg": "jpeg"}.get(ext, ext)
    sample = view.reader.samples([key])[key]  # Parquet: the format is in the record
    return sample["image"], sample["meta"]["format"]


def _stream(release: Release, relpath: str) -> Iterator[bytes]:
    with release.fs.open(join(release.root, relpath), "rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


class ThumbnailCache:
    """Thumbnails made on first request (PIL draft + thumbnail) and kept in a bounded LRU."""

    def __init__(self, view: ReleaseView, size: int) -> None:
        self._view, self._size = view, size
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = make_thumbnail(_image(self._view, key)[0])
        with self._lock:
            self._items[key] = data
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return data


def make_thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes:
    """A JPEG whose longer side is at most `side`; ExploreError 422 when it cannot be decoded."""
    try:
        return jpeg_thumbnail(data, side, quality=80)
    except THUMBNAIL_ERRORS as exc:
        raise ExploreError(422, f"the stored image cannot be decoded: {exc}") from None


def serve(uri: str, host: str = "127.0.0.1", port: int = 8000,
          storage_options: dict[str, Any] | None = None,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Run the explorer until interrupted, on waitress (a production WSGI server; Werkzeug's
    development server printed its warning banner). `on_ready` gets the URL once the socket is
    bound (with port 0, the port the system chose)."""
    from waitress import create_server

    app = create_app(open_release(uri, storage_options))
    server = create_server(app, host=host, port=port, threads=SERVER_THREADS, ident="synshard")
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None  # as Ctrl-C
    try:
        if on_ready is not None:
            on_ready(server_url(host, server))
        server.run()  # returns on Ctrl-C or SIGTERM (waitress closes its sockets)
    except KeyboardInterrupt:
        server.close()  # a stop before run() began, or during waitress's own shutdown
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def server_url(host: str, server: Any) -> str:
    """The explorer's address: the host as given, the port actually bound (several sockets, as
    for `localhost` on IPv4 and IPv6, share one port)."""
    bound = getattr(server, "effective_port", None)
    if bound is None:
        bound = server.effective_listen[0][1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{bound}/"
