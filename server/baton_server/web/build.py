"""Builds the HTTP port's application from the servicers the gRPC server serves."""

from __future__ import annotations

from pathlib import Path

from baton_server.api.admission import Admission
from baton_server.api.observing import CallObserver
from baton_server.api.protos import svc
from baton_server.api.server import Servicers
from baton_server.config import Settings
from baton_server.web.asgi import BatonHttpApp
from baton_server.web.connect import connect_services
from baton_server.web.static import StaticApps

# The web apps as `npm run build` in clients/web leaves them, in a source checkout.
REPOSITORY_WEB_ROOT = Path(__file__).resolve().parents[3] / "clients" / "web" / "dist"


def web_root(settings: Settings) -> Path:
    """--web-root, else the repository's clients/web/dist (until it is built, /widget/ and
    /console/ answer 404 saying so)."""
    return Path(settings.web_root) if settings.web_root else REPOSITORY_WEB_ROOT


def build_http_app(
    settings: Settings,
    servicers: Servicers,
    admission: Admission | None,
    observer: CallObserver | None,
) -> BatonHttpApp:
    descriptors = list(svc.DESCRIPTOR.services_by_name.values())
    services = connect_services(
        servicers, admission, observer, descriptors, settings.max_message_bytes
    )
    served = {service.prefix for service in services}
    unserved = {
        f"/{d.full_name}/": (
            f"{d.full_name} is not served over Connect or gRPC-Web (its bidirectional "
            "streams need HTTP/2 end to end): call it with a gRPC client on the gRPC port"
        )
        for d in descriptors
        if f"/{d.full_name}/" not in served
    }
    root = web_root(settings)
    return BatonHttpApp(
        services,
        unserved,
        StaticApps(root),
        settings.cors_origins,
    )
