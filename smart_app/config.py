"""One typed configuration object, read from a TOML file and the environment.

Bad configuration must fail at start with a message naming the key, not at 3 a.m. on the first
launch, so every value is checked here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

AUTH_METHODS = ("public", "client_secret_basic", "private_key_jwt")
SCOPE_PROFILES = ("v2", "v1")
SIGNING_ALGS = ("RS384", "ES384")
VENDORS = ("", "epic", "oracle")
#: Where "Save to chart" may write: the ladder (auto), one rung only, or nowhere.
WRITEBACK = ("auto", "riskassessment", "note", "none")
#: The clinical note's type when the tenant names none: LOINC Progress note.
DEFAULT_NOTE_TYPE = "http://loinc.org|11506-3"
DEFAULT_NOTE_TYPE_DISPLAY = "Progress note"
STORE_SCHEMES = ("sqlite://", "memory://", "redis://", "rediss://")
ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message names the key."""


@dataclass(frozen=True)
class CodeSets:
    """Codes a deployment adds to the defaults of docs/clinical-basis.md §3–§5 ("system|code")."""

    jcv_antibody: tuple[str, ...] = ()
    jcv_index: tuple[str, ...] = ()
    natalizumab: tuple[str, ...] = ()
    immunosuppressants: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    mri: tuple[str, ...] = ()  # local brain-MRI procedure codes (reports, studies, procedures)


@dataclass(frozen=True)
class CdsSettings:
    """``[tenants.cds]``: the tenant's EHR as a CDS Hooks client (CDS Hooks 2.0, "Trusting CDS
    Clients"). Only calls whose JWT ``iss`` is ``issuer``, signed by a key from ``jwks_url``,
    are answered; a ``jku`` header must equal ``jwks_url``, so no other URL is ever fetched.
    """

    issuer: str
    jwks_url: str
    audience: str | None = None  # an exact ``aud`` the site typed into its EHR, if not the URL
    slug: str = ""  # /t/<slug>/cds-services; derived from the tenant's name when not given
    # Prefetch the laboratory Observations by these "system|code"s rather than by category,
    # for EHRs whose prefetch cannot search by category.
    observation_codes: tuple[str, ...] = ()
    jcv_order: str = "http://loinc.org|70173-0"  # "system|code" of the anti-JCV test to order
    mri_order: str = ""  # "system|code" of a brain MRI order; "" offers no MRI suggestion
    basis_url: str = ""  # the card's evidence link; "" = the app's own /basis page
    # When patient-view answers with a card: "natalizumab" (natalizumab in the patient's care),
    # "actionable" (and something is due, missing, overdue or higher-risk), "always".
    patient_view: str = "natalizumab"
    # PML can occur up to 6 months after the last dose (Tysabri label): natalizumab counts as
    # "in the patient's care" for this long after its last record.
    care_window_months: int = 6
    # The EHR's prefetch can search medications by code (``?code=``): the templates then ask
    # only for natalizumab and immunosuppressant records, not the whole medication lists.
    medication_code_search: bool = False
    # Also prefetch laboratory results by category (date-bounded), for anti-JCV results
    # under unmapped local codes recognised by their text. Off: by code only.
    lab_category: bool = False
    # JWT algorithms accepted from this EHR: asymmetric only (RS/ES/PS 256/384/512).
    algorithms: tuple[str, ...] = ("RS384", "ES384")


@dataclass(frozen=True)
class Tenant:
    """One EHR the app is registered with; its ``iss`` is the allowlist entry."""

    name: str
    iss: str
    client_id: str
    auth: str = "private_key_jwt"
    client_secret: str | None = None
    scopes: str = "v2"  # "v2" | "v1" | an explicit space-separated scope string
    frame_ancestors: tuple[str, ...] = ()
    signing_alg: str = "RS384"  # private_key_jwt only: "RS384" | "ES384" (SMART asymmetric auth)
    #: "epic" | "oracle" | "" (any other SMART server): switches on that vendor's published
    #: conventions (Epic: ``Epic-Client-ID`` on ``/metadata``) and check-config's advice.
    vendor: str = ""
    #: The OpenID issuer of this EHR's id_tokens when it is on neither the FHIR host nor the
    #: authorization host (an id_token from any other issuer is refused).
    oidc_issuer: str | None = None
    #: ``_count`` for this EHR's searches; None: ``fhir_page_size``. Servers cap it (Oracle
    #: Millennium: 200), and a page the server will not fill only costs round trips.
    page_size: int | None = None
    #: The resource types read from this EHR; empty: what its CapabilityStatement offers of
    #: the types the engine reads (``smart.scopes.READ_TYPES``).
    read_types: tuple[str, ...] = ()
    cds: CdsSettings | None = None  # the EHR calls the app's CDS Hooks services
    # SMART Backend Services (``pml-risk worklist``): EHRs such as Epic register a backend
    # system as its own client; "" = the same client_id as the app.
    backend_client_id: str = ""
    #: "auto": a RiskAssessment where the EHR takes one, else a clinical note, else read-only;
    #: "riskassessment" / "note": that rung only; "none": never write.
    writeback: str = "auto"
    note_type: str = DEFAULT_NOTE_TYPE  # "system|code" of the DocumentReference.type
    note_type_display: str = DEFAULT_NOTE_TYPE_DISPLAY  # also what the page calls the note
    note_html: bool = False  # the note as one text/html attachment instead of text/plain
    #: The worklist's link per row: the EHR's chart URL with ``{patient}`` for the FHIR
    #: Patient id; "" = no link (a provider standalone launch gets no patient at Epic/Oracle).
    worklist_link: str = ""
    #: The MS clinic's phone number, printed on the patient handout under "Call your MS team
    #: right away"; "" prints a line that asks the patient to use the number the team gave.
    clinic_phone: str = ""

    @property
    def writes_risk_assessment(self) -> bool:
        return self.writeback in ("auto", "riskassessment")

    @property
    def writes_note(self) -> bool:
        return self.writeback in ("auto", "note")


@dataclass(frozen=True)
class ServerSettings:
    """``[server]``: how ``pml-risk serve`` runs gunicorn (flags override each value)."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2  # processes; 2 per core is gunicorn's advice for I/O-bound apps
    threads: int = 8  # per worker: most of a request is waiting on the EHR
    timeout: int = 60  # seconds a silent worker may live before gunicorn replaces it
    graceful_timeout: int = 20  # seconds in-flight requests get to finish on SIGTERM/SIGHUP


@dataclass(frozen=True)
class ProxySettings:
    """``[proxy]``: which ``X-Forwarded-*`` headers to believe. Default: none (no proxy)."""

    trusted_hops: int = 0  # proxies in front of the app that set X-Forwarded-For/Proto/Host
    # Peers allowed to send those headers (the TLS-terminating proxy's addresses/networks);
    # a request from anywhere else has its X-Forwarded-* headers ignored.
    trusted_addresses: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class AuditSettings:
    """``[audit]``: where the JSON-lines audit trail goes ("" = standard error)."""

    path: str = ""


@dataclass(frozen=True)
class MetricsSettings:
    """``[metrics]``: ``GET /metrics`` in the Prometheus text format (docs/deploy.md §7).

    Served only to scrapers on these networks (default: this host), and never to a request
    that came through an untrusted reverse proxy: the operational figures are not for the
    internet, though they carry no patient data.
    """

    enabled: bool = True
    allow: tuple[str, ...] = ("127.0.0.1/32", "::1/128")


@dataclass(frozen=True)
class LimitSettings:
    """``[limits]``: caps on state anyone can create before signing in.

    Every ``/launch`` or ``/standalone`` request stores a pending authorization (state, PKCE
    verifier) for ten minutes, before anyone has authenticated; these caps bound that storage per
    client address and in total over any ten-minute window. The reverse proxy's rate limit
    (docs/deploy.md) is the first line; these hold without one. Behind a hospital NAT many
    clinicians share one address, hence the generous default.
    """

    pending_per_address: int = 300
    pending_total: int = 20_000


@dataclass(frozen=True)
class Settings:
    base_url: str = "http://127.0.0.1:8000"
    secret_key: str = ""
    session_store: str = "sqlite:///instance/sessions.sqlite3"
    risk_table: str = "berger-fox-2016"  # a bundled table id, or a path to a table file
    keys_file: str = "instance/jwks-private.json"
    codes: CodeSets = field(default_factory=CodeSets)
    tenants: tuple[Tenant, ...] = ()
    # Web app tuning; the defaults suit an EHR on the same continent.
    session_ttl: int = 8 * 3600  # seconds a launch stays usable (an EHR shift, at most)
    # Seconds without a request after which a launch ends (an unattended workstation); refreshes
    # never extend ``session_ttl``, which counts from the sign-in.
    session_idle_timeout: int = 3600
    discovery_ttl: int = 3600  # seconds .well-known/smart-configuration is cached per issuer
    fhir_timeout: float = 10.0  # seconds per FHIR request (connect and read)
    fhir_max_pages: int = 20  # pages read per search before giving up (never under-count)
    fhir_page_size: int = 1000  # _count sent with every search
    # Anti-JCV results are searched by code (the mapped LOINC and local codes, any date), and
    # also within this category ("" = every Observation) over the last ``text_search_years``
    # years, so unmapped local codes are still recognised by their text without reading a
    # long-term chart's whole laboratory history.
    observation_category: str = "laboratory"
    text_search_years: int = 3
    # The clinic's time zone: "today" for an assessment is the clinic's calendar day, since chart
    # dates are compared as written (a UTC date drops today's infusion east of Greenwich).
    timezone: str = "UTC"
    # Outbound HTTP (EHR discovery, tokens, FHIR, JWKS): an egress proxy and a private CA, which
    # many hospitals mandate. Empty means direct connections and the system's CA store, and
    # HTTP(S)_PROXY in the environment is ignored either way: the EHR is reached as configured.
    http_proxy: str = ""
    no_proxy: tuple[str, ...] = ()  # hosts reached directly even with http_proxy set
    ca_bundle: str = ""  # a PEM file of CA certificates, replacing the default store
    server: ServerSettings = field(default_factory=ServerSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    audit: AuditSettings = field(default_factory=AuditSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    def tenant_for(self, iss: str) -> Tenant | None:
        """The tenant registered for exactly this ``iss`` (the allowlist check, made first)."""
        wanted = iss.rstrip("/")
        return next((t for t in self.tenants if t.iss == wanted), None)


def _str(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}{key}: expected a non-empty string")
    return value


def _codes(data: Mapping[str, Any], key: str, where: str = "codes.") -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) and "|" in v and v.split("|", 1)[1] for v in value
    ):
        raise ConfigError(f'{where}{key}: expected a list of "system|code" strings')
    return tuple(value)


def _code_sets(data: Any) -> CodeSets:
    if not isinstance(data, dict):
        raise ConfigError("codes: expected a table")
    _known(data, frozenset({"jcv_antibody", "jcv_index", "natalizumab", "immunosuppressants",
                            "mri"}),
           "codes.")
    agents = data.get("immunosuppressants", {})
    if not isinstance(agents, dict):
        raise ConfigError('codes.immunosuppressants: expected a table of agent = ["system|code"]')
    return CodeSets(
        jcv_antibody=_codes(data, "jcv_antibody"),
        jcv_index=_codes(data, "jcv_index"),
        natalizumab=_codes(data, "natalizumab"),
        immunosuppressants={
            name: _codes(agents, name) for name in agents
        },
        mri=_codes(data, "mri"),
    )


TOP_KEYS = frozenset({
    "base_url", "secret_key", "session_store", "risk_table", "keys_file", "codes", "tenants",
    "session_ttl", "discovery_ttl", "fhir_timeout", "fhir_max_pages", "fhir_page_size",
    "observation_category", "text_search_years", "timezone", "server", "proxy", "audit",
    "session_idle_timeout", "http_proxy", "no_proxy", "ca_bundle", "limits", "metrics",
})
TENANT_KEYS = frozenset({
    "name", "iss", "client_id", "auth", "client_secret", "scopes", "frame_ancestors",
    "worklist_link",
    "signing_alg", "vendor", "oidc_issuer", "page_size", "read_types", "cds",
    "backend_client_id", "writeback", "note_type", "note_type_display", "note_html",
    "clinic_phone",
})
CDS_KEYS = frozenset({"issuer", "jwks_url", "audience", "slug", "observation_codes", "jcv_order",
                      "mri_order", "basis_url", "patient_view", "care_window_months",
                      "medication_code_search", "lab_category", "algorithms"})
CDS_PATIENT_VIEW = ("natalizumab", "actionable", "always")
CDS_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384",
                  "PS512")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SERVER_KEYS = frozenset({"host", "port", "workers", "threads", "timeout", "graceful_timeout"})
PROXY_KEYS = frozenset({"trusted_hops", "trusted_addresses"})
AUDIT_KEYS = frozenset({"path"})
METRICS_KEYS = frozenset({"enabled", "allow"})
LIMIT_KEYS = frozenset({"pending_per_address", "pending_total"})


def _known(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    """A misspelt key would otherwise be ignored silently and its default used."""
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{where}{key}: unknown key (expected one of "
                              f"{', '.join(sorted(allowed))})")


def _table(data: Mapping[str, Any], key: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected a table ([{key}])")
    _known(value, allowed, f"{key}.")
    return value


def _server(data: Mapping[str, Any]) -> ServerSettings:
    table = _table(data, "server", SERVER_KEYS)
    d = ServerSettings()
    port = _number(table, "port", d.port, integer=True, where="server.")
    if port > 65535:
        raise ConfigError("server.port: expected a TCP port (1-65535)")
    return ServerSettings(
        host=_str(table, "host", "server.", d.host),
        port=port,
        workers=_number(table, "workers", d.workers, integer=True, where="server."),
        threads=_number(table, "threads", d.threads, integer=True, where="server."),
        timeout=_number(table, "timeout", d.timeout, integer=True, where="server."),
        graceful_timeout=_number(table, "graceful_timeout", d.graceful_timeout, integer=True,
                                 where="server."),
    )


def _proxy(data: Mapping[str, Any]) -> ProxySettings:
    table = _table(data, "proxy", PROXY_KEYS)
    hops = table.get("trusted_hops", 0)
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= 5:
        raise ConfigError("proxy.trusted_hops: expected an integer from 0 (no proxy) to 5")
    addresses = _networks(table, "trusted_addresses", ProxySettings().trusted_addresses,
                          "proxy.")
    return ProxySettings(trusted_hops=hops, trusted_addresses=addresses)


def _networks(table: Mapping[str, Any], key: str, default: tuple[str, ...],
              where: str) -> tuple[str, ...]:
    """A list of IP addresses or networks, each checked at start, not at the first request."""
    value = table.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise ConfigError(f"{where}{key}: expected a list of IP addresses or networks")
    for address in value:
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError as exc:
            raise ConfigError(
                f"{where}{key}: {address!r} is not an IP address or network") from exc
    return tuple(value)


def _audit(data: Mapping[str, Any]) -> AuditSettings:
    table = _table(data, "audit", AUDIT_KEYS)
    path = table.get("path", "")
    if not isinstance(path, str):
        raise ConfigError('audit.path: expected a file path, or "" for standard error')
    return AuditSettings(path=path)


def _metrics(data: Mapping[str, Any]) -> MetricsSettings:
    table = _table(data, "metrics", METRICS_KEYS)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError("metrics.enabled: expected true or false")
    allow = _networks(table, "allow", MetricsSettings().allow, "metrics.")
    return MetricsSettings(enabled=enabled, allow=allow)


def _limits(data: Mapping[str, Any]) -> LimitSettings:
    table = _table(data, "limits", LIMIT_KEYS)
    d = LimitSettings()
    return LimitSettings(
        pending_per_address=_number(table, "pending_per_address", d.pending_per_address,
                                    integer=True, where="limits."),
        pending_total=_number(table, "pending_total", d.pending_total, integer=True,
                              where="limits."),
    )


_PROXY_URL = re.compile(r"https?://([^@/\s]+@)?[A-Za-z0-9.\-\[\]:]{1,255}/?")


def _http_proxy(value: Any) -> str:
    if not isinstance(value, str) or (value and not _PROXY_URL.fullmatch(value)):
        raise ConfigError('http_proxy: expected a proxy URL such as "http://proxy.example:3128"'
                          ' (or "" for direct connections)')
    return value


def _no_proxy(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and "," not in v and " " not in v for v in value
    ):
        raise ConfigError('no_proxy: expected a list of host names, e.g. ["fhir.internal"]')
    return tuple(value)


def _ca_bundle(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError("ca_bundle: expected the path of a PEM file of CA certificates")
    if value and not Path(value).is_file():
        raise ConfigError(f"ca_bundle: {value} is not a readable file")
    return value


def _tenant(data: Any, n: int) -> Tenant:
    where = f"tenants[{n}]."
    if not isinstance(data, dict):
        raise ConfigError(f"tenants[{n}]: expected a table")
    _known(data, TENANT_KEYS, where)
    auth = data.get("auth", "private_key_jwt")
    if auth not in AUTH_METHODS:
        raise ConfigError(f"{where}auth: expected one of {', '.join(AUTH_METHODS)}")
    secret = data.get("client_secret")
    if auth == "client_secret_basic" and not secret:
        raise ConfigError(f"{where}client_secret: required when auth = client_secret_basic")
    iss = _str(data, "iss", where).rstrip("/")
    if not iss.startswith(("https://", "http://")):
        raise ConfigError(f"{where}iss: expected an absolute http(s) URL")
    origins = data.get("frame_ancestors", [])
    if not isinstance(origins, list) or not all(isinstance(o, str) for o in origins):
        raise ConfigError(f"{where}frame_ancestors: expected a list of origins")
    for origin in origins:  # they go verbatim into the CSP header: nothing but an origin
        if not ORIGIN.fullmatch(origin):
            raise ConfigError(f"{where}frame_ancestors: {origin!r} is not an origin "
                              "(https://host or https://host:port, optionally *.host)")
    alg = data.get("signing_alg", "RS384")
    if alg not in SIGNING_ALGS:
        raise ConfigError(f"{where}signing_alg: expected one of {', '.join(SIGNING_ALGS)}")
    vendor = data.get("vendor", "")
    if vendor not in VENDORS:
        raise ConfigError(f'{where}vendor: expected "epic", "oracle" or "" (any other EHR)')
    oidc_issuer = data.get("oidc_issuer")
    if oidc_issuer is not None and (
        not isinstance(oidc_issuer, str) or not oidc_issuer.startswith(("https://", "http://"))
    ):
        raise ConfigError(f"{where}oidc_issuer: expected an absolute http(s) URL")
    page_size = data.get("page_size")
    if page_size is not None:
        page_size = _number(data, "page_size", 1, integer=True, where=where)
    name = _str(data, "name", where, iss)
    writeback = data.get("writeback", "auto")
    if writeback not in WRITEBACK:
        raise ConfigError(f"{where}writeback: expected one of {', '.join(WRITEBACK)}")
    note_type = _str(data, "note_type", where, DEFAULT_NOTE_TYPE)
    if "|" not in note_type or not all(note_type.split("|", 1)):
        raise ConfigError(f'{where}note_type: expected "system|code" (e.g. {DEFAULT_NOTE_TYPE})')
    display = DEFAULT_NOTE_TYPE_DISPLAY if note_type == DEFAULT_NOTE_TYPE else None
    if display is None and "note_type_display" not in data:
        raise ConfigError(f"{where}note_type_display: required with a note_type other than "
                          "the default (the page says where the result goes in these words)")
    note_html = data.get("note_html", False)
    if not isinstance(note_html, bool):
        raise ConfigError(f"{where}note_html: expected true or false")
    return Tenant(
        name=name,
        iss=iss,
        client_id=_str(data, "client_id", where),
        auth=auth,
        client_secret=secret,
        scopes=_str(data, "scopes", where, "v2"),
        frame_ancestors=tuple(origins),
        signing_alg=alg,
        vendor=vendor,
        oidc_issuer=oidc_issuer,
        page_size=page_size,
        read_types=_read_types(data, where),
        cds=_cds(data["cds"], name, f"{where}cds.") if "cds" in data else None,
        backend_client_id=_str(data, "backend_client_id", where, "")
        if "backend_client_id" in data else "",
        worklist_link=_worklist_link(data, where),
        writeback=writeback,
        note_type=note_type,
        note_type_display=_str(data, "note_type_display", where, display),
        note_html=note_html,
        clinic_phone=_str(data, "clinic_phone", where)[:40] if "clinic_phone" in data else "",
    )


def _url(data: Mapping[str, Any], key: str, where: str) -> str:
    """https, or http on loopback (the demo and tests): keys and tokens never cross a network
    in the clear."""
    value = _str(data, key, where)
    try:
        host = urlsplit(value).hostname or ""
    except ValueError:
        host = ""
    if not host or not (value.startswith("https://")
                        or (value.startswith("http://") and host in LOOPBACK)):
        raise ConfigError(f"{where}{key}: expected an https URL (http only on 127.0.0.1)")
    return value


def _system_code(data: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (value and not value.partition("|")[2]):
        raise ConfigError(f'{where}{key}: expected "system|code"')
    return value


def _cds(data: Any, name: str, where: str) -> CdsSettings:
    if not isinstance(data, dict):
        raise ConfigError(f"{where[:-1]}: expected a table ([tenants.cds])")
    _known(data, CDS_KEYS, where)
    audience = data.get("audience")
    if audience is not None and (not isinstance(audience, str) or not audience):
        raise ConfigError(f"{where}audience: expected a non-empty string")
    slug = data.get("slug") or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64]
    if not isinstance(slug, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", slug):
        raise ConfigError(f"{where}slug: expected lowercase letters, digits and dashes")
    basis = data.get("basis_url", "")
    return CdsSettings(
        issuer=_str(data, "issuer", where).rstrip("/"),
        jwks_url=_url(data, "jwks_url", where),
        audience=audience,
        slug=slug,
        observation_codes=_codes(data, "observation_codes", where),
        jcv_order=_system_code(data, "jcv_order", where, CdsSettings.jcv_order),
        mri_order=_system_code(data, "mri_order", where, ""),
        basis_url=_url(data, "basis_url", where) if basis else "",
        patient_view=_cds_choice(data, "patient_view", where),
        care_window_months=_number(data, "care_window_months", 6, integer=True, where=where),
        medication_code_search=_cds_flag(data, "medication_code_search", where),
        lab_category=_cds_flag(data, "lab_category", where),
        algorithms=_cds_algorithms(data, where),
    )


def _cds_choice(data: Mapping[str, Any], key: str, where: str) -> str:
    value = data.get(key, CDS_PATIENT_VIEW[0])
    if value not in CDS_PATIENT_VIEW:
        raise ConfigError(f"{where}{key}: expected one of {', '.join(CDS_PATIENT_VIEW)}")
    return str(value)


def _cds_flag(data: Mapping[str, Any], key: str, where: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}{key}: expected true or false")
    return value


def _cds_algorithms(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Asymmetric JWS algorithms only: ``none`` and HMAC (a "signature" anyone holding the
    public key can make) are refused at start, not at the first call."""
    value = data.get("algorithms", ["RS384", "ES384"])
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v in CDS_ALGORITHMS for v in value):
        raise ConfigError(f"{where}algorithms: expected a list of asymmetric JWS algorithms "
                          f"({', '.join(CDS_ALGORITHMS)}); none and HMAC are never accepted")
    return tuple(dict.fromkeys(value))


def _worklist_link(data: Mapping[str, Any], where: str) -> str:
    value = data.get("worklist_link", "")
    if value == "":
        return ""
    if not isinstance(value, str) or "{patient}" not in value or \
            not value.startswith("https://"):
        raise ConfigError(f'{where}worklist_link: expected an https URL with "{{patient}}", e.g. '
                          '"https://ehr.example/chart?patient={patient}"')
    return value


def _read_types(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = data.get("read_types", [])
    if not isinstance(value, list) or not all(
        isinstance(v, str) and re.fullmatch(r"[A-Z][A-Za-z]+", v) for v in value
    ):
        raise ConfigError(f'{where}read_types: expected a list of FHIR resource types '
                          '(e.g. ["Patient", "Observation", "MedicationRequest"])')
    return tuple(value)


def _number(
    data: Mapping[str, Any], key: str, default: float, *, integer: bool, where: str = ""
) -> Any:
    value = data.get(key, default)
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or value <= 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{where}{key}: expected {kind}")
    return value


def _store_url(data: Mapping[str, Any], default: str) -> str:
    url = _str(data, "session_store", "", default)
    if not url.startswith(STORE_SCHEMES):
        raise ConfigError(
            "session_store: expected sqlite:///path, memory:// or redis://host:port/db"
        )
    return url


def from_mapping(data: Mapping[str, Any]) -> Settings:
    """Build settings from parsed TOML; environment variables ``PML_RISK_<KEY>`` win."""
    merged = dict(data)
    _known(merged, TOP_KEYS, "")
    for key in ("base_url", "secret_key", "session_store", "risk_table", "keys_file",
                "http_proxy", "ca_bundle"):
        env = os.environ.get(f"PML_RISK_{key.upper()}")
        if env:
            merged[key] = env
    tenants = merged.get("tenants", [])
    if not isinstance(tenants, list):
        raise ConfigError("tenants: expected an array of tables ([[tenants]])")
    defaults = Settings()
    return Settings(
        base_url=_str(merged, "base_url", "", defaults.base_url).rstrip("/"),
        secret_key=_secret(merged.get("secret_key", "")),
        session_store=_store_url(merged, defaults.session_store),
        risk_table=_str(merged, "risk_table", "", defaults.risk_table),
        keys_file=_str(merged, "keys_file", "", defaults.keys_file),
        codes=_code_sets(merged.get("codes", {})),
        tenants=_unique(tuple(_tenant(t, n) for n, t in enumerate(tenants))),
        session_ttl=_number(merged, "session_ttl", defaults.session_ttl, integer=True),
        session_idle_timeout=_number(merged, "session_idle_timeout",
                                     defaults.session_idle_timeout, integer=True),
        discovery_ttl=_number(merged, "discovery_ttl", defaults.discovery_ttl, integer=True),
        fhir_timeout=float(_number(merged, "fhir_timeout", defaults.fhir_timeout, integer=False)),
        fhir_max_pages=_number(merged, "fhir_max_pages", defaults.fhir_max_pages, integer=True),
        fhir_page_size=_number(merged, "fhir_page_size", defaults.fhir_page_size, integer=True),
        observation_category=_category(merged.get("observation_category", "laboratory")),
        text_search_years=_number(merged, "text_search_years", defaults.text_search_years,
                                  integer=True),
        timezone=_timezone(merged.get("timezone", defaults.timezone)),
        http_proxy=_http_proxy(merged.get("http_proxy", "")),
        no_proxy=_no_proxy(merged.get("no_proxy", [])),
        ca_bundle=_ca_bundle(merged.get("ca_bundle", "")),
        server=_server(merged),
        proxy=_proxy(merged),
        audit=_audit(merged),
        limits=_limits(merged),
        metrics=_metrics(merged),
    )


def _secret(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError("secret_key: expected a string")
    return value


def _timezone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"timezone: unknown time zone {value!r} (e.g. America/Chicago)") from exc
    return str(value)


def _category(value: Any) -> str:
    if not isinstance(value, str) or " " in value or "," in value:
        raise ConfigError('observation_category: expected one category code, or "" for all')
    return value


def _unique(tenants: tuple[Tenant, ...]) -> tuple[Tenant, ...]:
    seen: set[str] = set()
    for n, tenant in enumerate(tenants):
        if tenant.iss in seen:
            raise ConfigError(f"tenants[{n}].iss: {tenant.iss} is registered twice")
        seen.add(tenant.iss)
        if tenant.cds is not None:  # a CDS call names its tenant by JWT issuer or by slug
            for key, value in (("issuer", tenant.cds.issuer), ("slug", tenant.cds.slug)):
                if f"cds {key} {value}" in seen:
                    raise ConfigError(f"tenants[{n}].cds.{key}: {value} is used twice")
                seen.add(f"cds {key} {value}")
    return tenants


def require_web(settings: Settings) -> None:
    """Checks that only matter when serving HTTP (the CLI's ``assess`` needs none of them)."""
    if len(settings.secret_key) < 32:
        raise ConfigError("secret_key: expected at least 32 characters (it signs the cookie "
                          "and derives the key that encrypts tokens at rest)")
    if not settings.base_url.startswith(("https://", "http://")):
        raise ConfigError("base_url: expected an absolute http(s) URL")
    if not settings.tenants:
        raise ConfigError("tenants: at least one [[tenants]] entry is required to serve")


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read ``path``, else ``$PML_RISK_CONFIG``, else defaults (environment still applies)."""
    path = path or os.environ.get("PML_RISK_CONFIG")
    if not path:
        return from_mapping({})
    try:
        with Path(path).open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except OSError as exc:  # e.g. mode 0600 for root while the app runs as its own user
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return from_mapping(data)
