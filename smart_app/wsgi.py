"""The app as a WSGI callable, for sites that run their own server: ``smart_app.wsgi:app``.

``pml-risk serve`` is the supported way to run the app (gunicorn with the settings of
``[server]``); a site whose platform standardises on another WSGI server (uWSGI, mod_wsgi,
gunicorn with its own configuration) points it at this module instead. The configuration comes
from ``PML_RISK_CONFIG``, and the same start-up checks as ``serve`` run at import, so a wrong
layout stops the server with ``check-config``'s one-line message.

Keep the server's own request logging off (URLs carry launch ids and authorization codes), let
a reverse proxy buffer requests in front of it (docs/deploy.md §4), and run one process per
worker only with a shared session store (``redis://``; ``memory://`` is per process).
"""

from __future__ import annotations

from .app import create_app
from .cli.serve import StartupError, checked_settings
from .ops import logs

try:
    _settings = checked_settings(None)
except StartupError as exc:
    raise SystemExit("pml-risk: " + "\npml-risk: ".join(exc.lines)) from None

logs.configure(_settings.audit.path)
app = create_app(_settings)
