"""Writes: a create that is safe to retry (conditional create, same body, same identifier).

A create is retried on 5xx and time-outs only, a bounded number of times, always with the same
body, so a lost answer never produces a second copy where the server honours ``If-None-Exist``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from ...http.bounded import MB, deadline_in, read_body
from .transport import DEADLINE_FACTOR, MAX_RETRY_AFTER, FhirError, FhirTransport, _Job

log = logging.getLogger(__name__)

WRITE_RETRIES = 2  # a create is retried on 5xx/timeouts only, always with the same identifier
MAX_WRITE_ANSWER_BYTES = 2 * MB  # the echo of a create


@dataclass(frozen=True)
class WriteResult:
    """What the EHR answered to a create; ``status`` 0 means no answer (timeout, network)."""

    status: int
    resource: dict[str, Any] | None  # the body, when it is the resource itself
    location: str | None
    attempts: int
    diagnostics: str = ""  # OperationOutcome text of a refusal (shown to the clinician)

    @property
    def ok(self) -> bool:
        return self.status in (200, 201)

    @property
    def created(self) -> bool:
        return self.status == 201

    @property
    def resource_id(self) -> str | None:
        """The logical id, from the body or else from ``Location`` (a 201 may have no body)."""
        if self.resource is not None and isinstance(self.resource.get("id"), str):
            return str(self.resource["id"])
        if self.location:
            parts = self.location.rstrip("/").split("/")
            if "_history" in parts:
                parts = parts[: parts.index("_history")]
            if len(parts) >= 2 and parts[-1]:
                return parts[-1]
        return None



class Writes(FhirTransport):
    """Creating resources and the one search a search-then-create needs."""

    def create(
        self,
        resource: Mapping[str, Any],
        *,
        if_none_exist: str | None,
        retries: int = WRITE_RETRIES,
    ) -> WriteResult:
        """POST a resource, conditionally when ``if_none_exist`` is given (no second copy on retry).

        Retried only on 5xx, 429 and timeouts/network errors, with the same body: safe because
        the identifier is deterministic and the create is conditional. A 401 refreshes the
        token once. Never raises for an HTTP answer; the caller decides what to tell the user.
        """
        rtype = str(resource.get("resourceType", ""))
        url = self._url(rtype)
        token = self._token(None)
        forced = False
        attempts = 0
        last = WriteResult(0, None, None, 0, "no answer")
        while attempts <= retries:
            headers = {
                "Accept": "application/fhir+json",
                "Content-Type": "application/fhir+json",
                "Authorization": f"Bearer {token}",
                "Prefer": "return=representation",
            }
            if if_none_exist:
                headers["If-None-Exist"] = if_none_exist
            attempts += 1
            try:
                resp = self._http.post(url, json=dict(resource), headers=headers, stream=True,
                                       timeout=self._timeout, allow_redirects=False)
            except requests.RequestException as exc:
                kind = "timeout" if isinstance(exc, requests.Timeout) else "network"
                log.info("FHIR create %s: %s (attempt %d)", rtype, kind, attempts)
                last = WriteResult(0, None, None, attempts, f"no answer ({kind})")
                self._sleep(0.25 * attempts)
                continue
            if resp.status_code == 401 and not forced:
                if resp.raw is not None:
                    resp.close()  # streamed: its body is not wanted
                forced = True
                attempts -= 1
                token = self._token(token)
                continue
            last = self._write_result(resp, rtype, attempts, self._timeout)
            if resp.status_code >= 500 or resp.status_code == 429:
                log.info("FHIR create %s: %s (attempt %d)", rtype, resp.status_code, attempts)
                self._sleep(min(0.25 * attempts, MAX_RETRY_AFTER))
                continue
            return last
        return last

    @staticmethod
    def _write_result(resp: requests.Response, rtype: str, attempts: int,
                      timeout: float | None = None) -> WriteResult:
        body: Any = None
        try:  # the answer is bounded; one too large or too slow is read as "no body"
            content = read_body(resp, max_bytes=MAX_WRITE_ANSWER_BYTES,
                                deadline=deadline_in(DEADLINE_FACTOR * (timeout or 10.0)),
                                read_timeout=timeout)
        except requests.RequestException:
            log.info("FHIR create %s: the answer's body was not read (too large or too slow)",
                     rtype)
            content = b""
        if content:
            try:
                body = resp.json()
            except (ValueError, RecursionError):
                body = None
        resource = body if isinstance(body, dict) and body.get("resourceType") == rtype else None
        diagnostics = ""
        if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
            diagnostics = "; ".join(FhirTransport._diagnostics(body))[:300]
        return WriteResult(resp.status_code, resource, resp.headers.get("Location"), attempts,
                           diagnostics)

    def search_one(self, rtype: str, params: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """One page of a search (no paging); raises ``FhirError`` unless the EHR answers 200."""
        result = self._get(_Job(rtype, self._url(rtype, params)))
        if result.status != 200 or result.body is None:
            raise FhirError(f"the EHR answered {result.status} ({rtype})", result.status)
        found = []
        for entry in result.body.get("entry", []) or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == rtype:
                found.append(resource)
        return found
