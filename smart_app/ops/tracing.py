"""OpenTelemetry traces, with the optional ``[otel]`` extra (``pip install 'pml-risk[otel]'``).

Tracing is configured the standard way, by the ``OTEL_*`` environment variables (exporter,
endpoint, service name, sampler), and is on only when one of them names an exporter. Without
those variables, or without the extra, nothing changes and no OpenTelemetry module is
imported. Flask requests and every outbound ``requests`` call (FHIR searches, token and
discovery requests) become spans.

FHIR URLs carry patient ids (``Patient/123``, ``?patient=123``) and the app's own URLs carry
launch ids: before any exporter sees a span, URL attributes lose their query string and the id
after each resource type or ``launches`` segment, and bodies are never recorded.
"""

from __future__ import annotations

import importlib.util
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Flask

#: Any one of these names an exporter: tracing is wanted.
_EXPORTER_ENV = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
                 "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target", "url.path", "http.route")
_DROPPED_ATTRIBUTES = ("url.query",)
_ID_AFTER = re.compile(r"^(?:[A-Z][A-Za-z]+|launches|t)$")
EXTENSION = "pml_risk.tracing"


def wanted(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return False
    return any(env.get(name) for name in _EXPORTER_ENV)


def scrub(value: str) -> str:
    """A URL or path without its query string and without the ids it names."""
    parts = urlsplit(value)
    segments = parts.path.split("/")
    for n in range(1, len(segments)):
        word = segments[n]
        if (_ID_AFTER.match(segments[n - 1]) and word and word[0] not in "$_"
                and not _ID_AFTER.match(word)):
            segments[n] = "{id}"
    return urlunsplit(parts._replace(path="/".join(segments), query="", fragment=""))


def scrub_span(span: Any) -> None:
    """Rewrite a live span's URL attributes (see the module's docstring)."""
    if span is None or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str):
            span.set_attribute(key, scrub(value))
    for key in _DROPPED_ATTRIBUTES:
        if key in attributes:
            span.set_attribute(key, "")


def install(app: Flask, http: Any) -> bool:
    """Instrument this app and outbound HTTP when the extra is installed and tracing wanted."""
    if not wanted() or importlib.util.find_spec("opentelemetry") is None:
        return False
    try:
        from opentelemetry import trace
        from opentelemetry.distro import OpenTelemetryConfigurator
        from opentelemetry.instrumentation.flask import FlaskInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:  # part of the extra is missing: run untraced, as without it
        return False

    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        # The provider and the exporters named by OTEL_TRACES_EXPORTER &c., as
        # ``opentelemetry-instrument`` would set them up.
        OpenTelemetryConfigurator().configure()  # type: ignore[no-untyped-call]
    instrumentor = RequestsInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=trace.get_tracer_provider(),
                                request_hook=lambda span, *_: scrub_span(span),
                                response_hook=lambda span, *_: scrub_span(span))
    # The instrumentation sets the request's attributes again after its request hook, so they
    # are scrubbed when the response is known (the span is still open then).
    FlaskInstrumentor.instrument_app(  # type: ignore[no-untyped-call]
        app, tracer_provider=trace.get_tracer_provider(),
        response_hook=lambda span, *_: scrub_span(span))
    app.extensions[EXTENSION] = True
    return True
