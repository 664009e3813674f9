"""Flask app factory: the image endpoint and Flask's pages over ``services.Services``; one error handler."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from .access.flow import blueprint as flow_blueprint
from .access.login import blueprint as login_blueprint
from .admin import blueprint as admin_blueprint
from .config import Settings, load_settings
from .errors import IIIFError
from .forwarded import ForwardedHeaders
from .http import EVERY_RESPONSE, error_body, error_headers, preflight_headers, status_for, status_line
from .image.routes import ImageEndpoint
from .observe import Observed
from .presentation.routes import blueprint as presentation_blueprint
from .services import Services
from .web import blueprint as web_blueprint
from .web.asset_routes import blueprint as assets_blueprint
from .web.embed import blueprint as embed_blueprint
from .web.oembed import blueprint as oembed_blueprint
from .web.pages import blueprint as pages_blueprint
from .web.pages import not_found_page, wants_page
from .web.viewer import blueprint as viewer_blueprint

log = logging.getLogger("iiif_server")


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    services = Services(settings)
    app = Flask(__name__)
    app.url_map.merge_slashes = False  # "//etc/passwd" must reach the identifier check, not be rewritten
    app.config["IIIF_SETTINGS"] = settings
    app.extensions["iiif_caches"] = services.caches
    app.extensions["iiif_server"] = services.image_service
    app.extensions["iiif_catalogue"] = services.catalogue
    app.extensions["iiif_admin_throttle"] = services.admin_throttle
    app.extensions["iiif_accounts"] = services.accounts
    app.extensions["iiif_sessions"] = services.sessions
    app.extensions["iiif_login_throttle"] = services.login_throttle
    app.extensions["iiif_tokens"] = services.tokens
    app.extensions["iiif_ambient"] = services.ambient
    app.extensions["iiif_search"] = services.search
    app.extensions["iiif_assets"] = services.assets
    app.register_blueprint(admin_blueprint)
    app.register_blueprint(login_blueprint)
    app.register_blueprint(flow_blueprint)
    app.register_blueprint(presentation_blueprint)
    app.register_blueprint(web_blueprint)
    app.register_blueprint(pages_blueprint)
    app.register_blueprint(viewer_blueprint)
    app.register_blueprint(assets_blueprint)
    app.register_blueprint(embed_blueprint)
    app.register_blueprint(oembed_blueprint)
    _register_errors(app)
    _register_cors(app, settings.http.cors_max_age)
    # The image endpoint answers /iiif/{2,3}/ before Flask sees the request: the hot path.
    app.wsgi_app = ImageEndpoint(  # type: ignore[method-assign]
        services.image_service,
        app.wsgi_app,
        public_base_url=settings.server.public_base_url,
        cache_control=settings.http.cache_control,
        cors_max_age=settings.http.cors_max_age,
        credentials=services.credentials,
        audit=services.audit,
        settings=settings,
    )
    server = settings.server
    if server.trusted_proxies and server.proxy_hops:
        app.wsgi_app = ForwardedHeaders(  # type: ignore[method-assign]
            app.wsgi_app, server.trusted_proxies, server.proxy_hops, server.forwarded_header == "forwarded"
        )
    # Outermost: /metrics is allowed by the connecting address, before forwarded headers rewrite it.
    metrics = settings.metrics
    observed = app.wsgi_app = Observed(  # type: ignore[method-assign]
        app.wsgi_app,
        services.readiness,
        metrics_enabled=metrics.enabled,
        metrics_allow=metrics.allow,
        metrics_dir=Path(metrics.directory) if metrics.directory else None,
        access_log=server.access_log,
    )
    app.extensions["iiif_observed"] = observed
    app.extensions["iiif_replay"] = services.replay
    return app


def _plain(message: str, status: int) -> Response:
    """The image endpoint's error answer, from Flask: same status line, body and headers."""
    body, headers = error_body(message)
    return Response(body, status=status_line(status), headers=headers)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(IIIFError)
    def iiif_error(error: IIIFError) -> Response:
        response = _plain(str(error), status_for(error))
        response.headers.extend(error_headers(error))
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if error.code and error.code < 400:
            return error.get_response()
        if error.code == 404 and wants_page():  # a visitor's dead link: the site's page, not a line of text
            return not_found_page()
        response = _plain(error.description or error.name, error.code or 500)
        # keep what the error says beyond its body: Allow (405), WWW-Authenticate (401)
        response.headers.extend((k, v) for k, v in error.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error for %s", request.path)
        return _plain("internal server error", 500)


def _register_cors(app: Flask, max_age: int) -> None:
    """``Access-Control-Allow-Origin: *`` (3.0 §6.2) and ``nosniff`` on every response, errors included."""

    @app.after_request
    def cors(response: Response) -> Response:
        response.headers.extend(EVERY_RESPONSE)
        if request.method == "OPTIONS":
            response.headers.extend(preflight_headers(request.headers.get("Access-Control-Request-Headers"), max_age))
        return response
