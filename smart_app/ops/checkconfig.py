"""``pml-risk check-config FILE``: validate a deployment's configuration without serving it.

Health-system IT changes configuration in a change window, often without a launch to try. This
runs every check ``serve`` would run at start, and the ones it cannot (is Redis reachable, does
each EHR's discovery document answer, does the EHR support the chosen client authentication),
then prints what each tenant will use. Every problem names its key, as in ``tenants[1].iss``.

Network checks go only to the configured session store and to each configured ``iss`` (never to
a URL from a response); ``--offline`` skips them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from .. import config
from ..fhir import capability
from ..risk.table import TableError
from ..risk.tables import load_table
from ..smart import keys
from ..smart.discovery import DiscoveryError, SmartConfiguration, fetch
from ..smart.scopes import READ_TYPES, GrantedScopes, requested_scopes, scope_profile

DISCOVERY_TIMEOUT = 5.0
NON_RESOURCE_SCOPES = frozenset({
    "launch", "launch/patient", "launch/encounter", "openid", "fhirUser", "profile",
    "online_access", "offline_access",
})
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


@dataclass
class Report:
    """Lines to print; any error makes the exit code 2."""

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def info(self, label: str, text: str, indent: int = 2) -> None:
        self.lines.append(f"{' ' * indent}{label:<17} {text}")

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def render(self) -> str:
        out = list(self.lines)
        out += [f"warning: {w}" for w in self.warnings]
        out += [f"error: {e}" for e in self.errors]
        verdict = (f"{len(self.errors)} error(s)" if self.errors else "configuration OK")
        out.append(f"{verdict}, {len(self.warnings)} warning(s)")
        return "\n".join(out) + "\n"


def redacted_url(url: str) -> str:
    """A store URL without its password (``redis://:secret@host`` -> ``redis://:***@host``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _is_local(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def check_store(settings: config.Settings, report: Report, offline: bool) -> None:
    url = settings.session_store
    shown = redacted_url(url)
    if url.startswith("memory://"):
        report.info("session_store", f"{shown} (one process only: serve runs one worker)")
        report.warn("session_store: memory:// loses every launch on restart and cannot be "
                    "shared by several instances; use redis:// in production")
        return
    if url.startswith("sqlite:///"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
        if not os.access(existing, os.W_OK):
            report.error(f"session_store: {folder} cannot be created or written")
            return
        report.info("session_store", f"{shown} (one host; several instances need redis://)")
        return
    if offline:
        report.info("session_store", f"{shown} (not contacted: --offline)")
        return
    from ..smart.store import open_kv

    try:
        ms = _timed(open_kv(url).ping)
    except Exception as exc:  # redis-py raises several types; the name is what helps
        report.error(f"session_store: {shown} is not reachable ({type(exc).__name__})")
        return
    report.info("session_store", f"{shown} (reachable, {ms:.0f} ms)")


def check_keys(settings: config.Settings, report: Report) -> keys.SigningKeys | None:
    needed = any(t.auth == "private_key_jwt" for t in settings.tenants)
    if not needed and not Path(settings.keys_file).exists():
        report.info("keys_file", f"{settings.keys_file} (not needed: no private_key_jwt tenant)")
        return None
    try:
        signing = keys.load(settings.keys_file)
    except keys.KeyFileError as exc:
        report.error(str(exc))
        return None
    mode = Path(settings.keys_file).stat().st_mode & 0o077
    if mode:
        report.warn(f"keys_file: {settings.keys_file} is readable by group or others "
                    f"(chmod 600 it)")
    previous = ", ".join(str(k.kid) for k in signing.previous) or "none"
    report.info("keys_file", f"{settings.keys_file} (current RS384 {signing.rsa.kid}, "
                             f"ES384 {signing.ec.kid}; previous: {previous})")
    return signing


def check_files(settings: config.Settings, report: Report) -> None:
    try:
        table = load_table(settings.risk_table)
        report.info("risk_table", f"{settings.risk_table} (table {table.id}, version "
                                  f"{table.version})")
    except (TableError, OSError, ValueError) as exc:
        report.error(f"risk_table: {exc}")
    path = settings.audit.path
    if path:
        folder = Path(path).parent
        target = Path(path) if Path(path).exists() else folder
        if not target.exists() or not os.access(target, os.W_OK):
            report.error(f"audit.path: {path} cannot be written")
        else:
            report.info("audit", f"JSON lines appended to {path}")
    else:
        report.info("audit", "JSON lines on standard error")
    proxy = settings.proxy
    if proxy.trusted_hops:
        report.info("proxy", f"X-Forwarded-* believed from {proxy.trusted_hops} hop(s) at "
                             f"{', '.join(proxy.trusted_addresses)}")
    else:
        report.info("proxy", "X-Forwarded-* ignored (no trusted proxy)")
    s = settings.server
    report.info("server", f"{s.host}:{s.port}, {s.workers} worker(s) x {s.threads} threads, "
                          f"graceful_timeout {s.graceful_timeout} s")


def _scope_problems(tenant: config.Tenant, where: str, report: Report) -> None:
    if tenant.scopes in ("v1", "v2"):
        return
    for token in tenant.scopes.split():
        if token not in NON_RESOURCE_SCOPES and GrantedScopes.parse(token).resources == ():
            report.error(f"{where}scopes: {token!r} is not a SMART scope")
    tokens = tenant.scopes.split()
    if not {"openid", "fhirUser"} <= set(tokens):
        report.warn(f"{where}scopes: without openid and fhirUser the user is unknown (the "
                    "audit trail and RiskAssessment.performer cannot name them)")
    granted = GrantedScopes.parse(tenant.scopes)
    missing = [t for t in READ_TYPES if not granted.can_search(t)]
    if missing:
        report.warn(f"{where}scopes: no read/search scope for {', '.join(missing)}; the "
                    "assessment will say the data may be incomplete")
    ra = tenant.writes_risk_assessment and granted.can_create("RiskAssessment")
    note = tenant.writes_note and granted.can_create("DocumentReference")
    if tenant.writeback != "none" and not (ra or note):
        wanted = {"auto": "RiskAssessment or DocumentReference",
                  "riskassessment": "RiskAssessment", "note": "DocumentReference"}
        report.warn(f"{where}scopes: no {wanted[tenant.writeback]} create scope; the app is "
                    "read-only")


def _writeback_text(tenant: config.Tenant) -> str:
    note = f"a clinical note ({tenant.note_type_display}, {tenant.note_type}" + (
        ", text/html)" if tenant.note_html else ", text/plain)")
    return {
        "auto": f"auto: a RiskAssessment where the EHR takes one, else {note}, else read-only",
        "riskassessment": "a RiskAssessment only (else read-only)",
        "note": f"{note} only (else read-only)",
        "none": "none: the app never writes to this EHR",
    }[tenant.writeback]


def _looks_like(iss: str) -> str:
    """A vendor guessed from the FHIR base's shape (only to suggest setting ``vendor``)."""
    lowered = iss.lower()
    if "/api/fhir/r4" in lowered or "/interconnect-" in lowered:
        return "epic"
    if "cerner.com" in lowered or "oraclecloud.com" in lowered or "/r4/ec2458f2" in lowered:
        return "oracle"
    return ""


#: Oracle Health Millennium answers at most this many entries per search page.
ORACLE_PAGE_CAP = 200


def vendor_advice(n: int, tenant: config.Tenant, report: Report) -> None:
    """What each EHR vendor publishes that this configuration should follow (no network)."""
    where = f"tenants[{n}]."
    guess = _looks_like(tenant.iss)
    if not tenant.vendor and guess:
        report.warn(f'{where}vendor: the iss looks like {guess.title()}; set vendor = "{guess}" '
                    "for its conventions and advice")
    if tenant.vendor:
        report.info("vendor", tenant.vendor, 4)
    if tenant.vendor == "epic":
        if tenant.auth == "private_key_jwt" and tenant.signing_alg != "RS384":
            report.warn(f"{where}signing_alg: Epic recommends RS384, and an organisation that "
                        "uploads the app's public key instead of using the JWKS URL can only "
                        "take an RSA key; use RS384")
        report.info("advice", "Epic: register the JWKS URL (non-production and production "
                              "keys differ); organisations that upload keys per licence get "
                              "the RSA key from `pml-risk keys show`", 4)
    if tenant.vendor == "oracle":
        size = tenant.page_size
        if size is None or size > ORACLE_PAGE_CAP:
            report.warn(f"{where}page_size: Oracle Health returns at most {ORACLE_PAGE_CAP} "
                        f"entries per page; set page_size = {ORACLE_PAGE_CAP}")
        report.info("advice", "Oracle: publish the DNS TXT record cerner-client-id=<client id> "
                              "on the redirect domain; id_tokens are issued on the "
                              "authorization host (accepted), or set oidc_issuer", 4)
    cds = tenant.cds
    if cds is not None:  # CDS Hooks (docs/deploy.md §6): who may call, where
        report.info("cds", f"JWT iss {cds.issuer}, keys {cds.jwks_url}, aud "
                           f"{cds.audience or '<the service URL>'}, tenant discovery "
                           f"/t/{cds.slug}/cds-services", 4)
        if tenant.vendor == "oracle":
            report.info("advice", "Oracle CDS Hooks: only patient-view is called (register "
                                  "pml-risk-patient-view); appContext is not passed; JWTs come "
                                  "from https://cds-hooks.cerner.com with keys at "
                                  "https://authorization.cerner.com/jwk", 4)
        if tenant.vendor == "epic":
            report.info("advice", "Epic CDS Hooks: iss and aud are typed in by the health "
                                  "system; jwks_url must equal the jku Epic sends", 4)
    unknown = [t for t in tenant.read_types if t not in READ_TYPES]
    if unknown:
        report.error(f"{where}read_types: {', '.join(unknown)} not read by the app "
                     f"(expected some of {', '.join(READ_TYPES)})")


def statement_advice(n: int, tenant: config.Tenant, found: SmartConfiguration,
                     statement: capability.ServerCapabilities, report: Report) -> None:
    """What the EHR's CapabilityStatement means for the reads, the scopes and the save."""
    where = f"tenants[{n}]."
    if not statement.known:
        report.warn(f"{where}iss: the CapabilityStatement ({tenant.iss}/metadata) could not be "
                    "read; every type is asked for, and no _include is sent")
        return
    offered = capability.offered_types(tenant, statement)
    missing = [t for t in READ_TYPES if not statement.offers(t)]
    if missing:
        report.info("not offered", f"{', '.join(missing)} (not searched, not asked for; "
                                   "shown as sources this EHR does not have)", 4)
    if not statement.searchable("MedicationAdministration") or (
            tenant.read_types and "MedicationAdministration" not in tenant.read_types):
        report.warn(f"{where}: this EHR does not offer MedicationAdministration: no estimate "
                    "without a clinician-entered infusion count (an estimate from the "
                    "natalizumab orders is offered as a labelled what-if)")
    includes = [f"{t}:medication" for t in READ_TYPES
                if statement.includes(t, f"{t}:medication")]
    report.info("_include", ", ".join(includes) or "none listed (medications looked up by id)",
                4)
    if tenant.scopes in ("v1", "v2"):
        profile = scope_profile(tenant, found.capabilities)
        scope = requested_scopes(tenant, ehr_launch=True, profile=profile, offered=offered)
        report.info("scopes (EHR)", f"({profile}) {scope}", 4)
    ra = statement.types.get("RiskAssessment")
    if ra is None or "create" not in ra.interactions:
        report.info("write-back", "no RiskAssessment create on this EHR: the result is saved "
                                  "as a clinical note where notes are offered", 4)
    else:
        report.info("write-back", "RiskAssessment create" + (
            " (conditional)" if ra.conditional_create else " (search, then create)"), 4)


def check_tenant(
    n: int,
    tenant: config.Tenant,
    signing: keys.SigningKeys | None,
    report: Report,
    http: requests.Session,
    offline: bool,
) -> None:
    where = f"tenants[{n}]."
    report.lines.append(f"tenant {tenant.name!r}")
    report.info("iss", tenant.iss, 4)
    report.info("client_id", tenant.client_id, 4)
    if tenant.iss.startswith("http://") and not _is_local(tenant.iss):
        report.warn(f"{where}iss: plain http; EHRs require HTTPS outside development")
    _scope_problems(tenant, where, report)
    profile = tenant.scopes if tenant.scopes in ("v1", "v2") else "explicit"
    report.info("scopes", f"({profile}) " + requested_scopes(tenant, ehr_launch=True), 4)
    auth = tenant.auth
    if auth == "private_key_jwt" and signing is not None:
        kid = signing.for_alg(tenant.signing_alg).kid
        report.info("auth", f"private_key_jwt, {tenant.signing_alg}, kid {kid}", 4)
    else:
        report.info("auth", auth, 4)
    if tenant.frame_ancestors:
        report.info("frame_ancestors", " ".join(tenant.frame_ancestors), 4)
    vendor_advice(n, tenant, report)
    report.info("writeback", _writeback_text(tenant), 4)
    if offline:
        report.info("discovery", "not contacted (--offline)", 4)
        return
    try:
        started = time.perf_counter()
        found = fetch(http, tenant.iss, DISCOVERY_TIMEOUT, capability.metadata_headers(tenant),
                      backend=True)
        ms = (time.perf_counter() - started) * 1000
    except (DiscoveryError, requests.RequestException, ValueError) as exc:
        report.error(f"{where}iss: SMART discovery at {tenant.iss} failed "
                     f"({type(exc).__name__}: {str(exc)[:160]})")
        report.info("discovery", "FAILED", 4)
        return
    report.info("discovery", f"reachable ({found.source}, {ms:.0f} ms), token endpoint "
                             f"{found.token_endpoint}", 4)
    methods = found.token_endpoint_auth_methods_supported
    if auth != "public" and methods and auth not in methods:
        report.warn(f"{where}auth: the EHR advertises {', '.join(methods)}, not {auth}")
    algs = found.token_endpoint_auth_signing_alg_values_supported
    if auth == "private_key_jwt" and algs and tenant.signing_alg not in algs:
        report.warn(f"{where}signing_alg: the EHR advertises {', '.join(algs)}, "
                    f"not {tenant.signing_alg}")
    if not found.authorization_endpoint:
        report.info("launch", "Backend Services only (no authorization_endpoint): usable by "
                              "pml-risk worklist; the EHR offers no app launch", 4)
    elif "S256" not in found.code_challenge_methods_supported:
        report.warn(f"{where}iss: the EHR does not advertise PKCE S256 (sent anyway)")
    if auth == "private_key_jwt" and tenant.signing_alg == "ES384" and (
            algs and "RS384" in algs and tenant.vendor != "epic"):
        report.info("advice", "RS384 is also advertised; RSA keys are the ones every EHR "
                              "accepts for per-organisation key upload", 4)
    statement_advice(n, tenant, found, capability.fetch(
        http, tenant.iss, DISCOVERY_TIMEOUT, capability.metadata_headers(tenant)), report)


def check(path: str, *, offline: bool = False) -> Report:
    report = Report()
    try:
        settings = config.load(path)
        config.require_web(settings)
    except config.ConfigError as exc:
        report.error(str(exc))
        return report
    report.lines.append(f"configuration {path}")
    report.info("base_url", settings.base_url)
    for label, suffix in (("launch URL", "/launch"), ("redirect URI", "/callback"),
                          ("JWKS URL", "/.well-known/jwks.json")):
        report.info(label, settings.base_url + suffix)
    if settings.base_url.startswith("http://") and not _is_local(settings.base_url):
        report.warn("base_url: plain http; EHRs require HTTPS (TLS at the proxy is fine)")
    check_store(settings, report, offline)
    signing = check_keys(settings, report)
    check_files(settings, report)
    http = requests.Session()
    http.trust_env = False
    for n, tenant in enumerate(settings.tenants):
        check_tenant(n, tenant, signing, report, http, offline)
    return report


def startup_errors(settings: config.Settings) -> list[str]:
    """The checks ``serve`` runs before it starts a worker: storage, audit trail, keys, table.

    Each problem is one line naming its key (``session_store: instance cannot be created or
    written``), so an unprivileged container user with the wrong layout reads why it did not
    start instead of a worker's traceback. Nothing here touches the network: a session store
    that is down is the readiness check's business (``/readyz``), not a reason to refuse to
    start.
    """
    report = Report()
    check_store(settings, report, offline=True)
    check_keys(settings, report)
    check_files(settings, report)
    return report.errors
