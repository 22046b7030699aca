"""A small Superset REST client: one HTTP session, login and token refresh, CSRF, timeouts on every
call, retries with backoff on idempotent calls and on 502/503/504, and errors that say what failed
(status, method, URL, Superset's message) without ever carrying a password."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import prison
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pfill.errors import PfillError
from pfill.secrets import mask_text

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = (502, 503, 504)
PAGE_SIZE = 100  # Superset caps list pages at 100
CONCURRENT_GETS = 8  # a single Superset gunicorn worker serves 8 threads by default


class SupersetError(PfillError):
    """A Superset API call failed; `status` is the HTTP status (None if no response)."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "", method: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.method = method


class AuthError(SupersetError):
    pass


def _message(response: requests.Response) -> str:
    """Superset's own words from an error response (JSON `message`/`errors`), or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict):
        for key in ("message", "msg", "error", "errors"):
            if body.get(key):
                value = body[key]
                if isinstance(value, list):
                    value = "; ".join(str(v.get("message", v)) if isinstance(v, dict) else str(v) for v in value)
                return str(value)
    return str(body)[:300]


class SupersetClient:
    """Talks to one Superset instance as one user. Counts requests by method in `calls`."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self.calls: Counter[str] = Counter()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._csrf_token: str | None = None
        self._lock = threading.Lock()  # calls and tokens, when get_many sends requests side by side
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=IDEMPOTENT_METHODS,
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=CONCURRENT_GETS)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"

    # -- plumbing ----------------------------------------------------------------------------------
    @property
    def writes(self) -> int:
        """How many write requests (POST/PUT/DELETE/PATCH) this client has sent, login excluded."""
        return sum(n for method, n in self.calls.items() if method in WRITE_METHODS)

    def _raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise SupersetError(
                f"{method} {url}: no answer within {self.timeout:.0f}s", url=url, method=method
            ) from exc
        except requests.RequestException as exc:
            reason = mask_text(str(exc), [self._password])
            raise SupersetError(f"{method} {url}: cannot connect: {reason}", url=url, method=method) from exc

    def _fail(self, response: requests.Response, method: str) -> SupersetError:
        url = response.request.url or f"{self.url}"
        message = mask_text(_message(response), [self._password])
        kind = AuthError if response.status_code in (401, 403) else SupersetError
        return kind(
            f"{method} {url} returned {response.status_code}: {message}",
            status=response.status_code,
            url=url,
            method=method,
        )

    def login(self) -> None:
        payload = {"username": self.username, "password": self._password, "provider": "db", "refresh": True}
        path = "/api/v1/security/login"
        response = self._raw("POST", path, json=payload)
        if response.status_code == 401:
            raise AuthError(
                f"login as {self.username!r} at {self.url} failed with 401: wrong user name or password",
                status=401,
                url=f"{self.url}{path}",
                method="POST",
            )
        if not response.ok:
            raise self._fail(response, "POST")
        body = response.json()
        self._access_token = body["access_token"]
        self._refresh_token = body.get("refresh_token")
        self.session.headers["Authorization"] = f"Bearer {self._access_token}"
        self._csrf_token = None

    def _refresh(self, expired: str | None = None) -> None:
        """Swap an expired access token for a new one; log in again if the refresh token is gone too.
        `expired`: the token a request failed with (another thread may have refreshed it meanwhile)."""
        with self._lock:
            if expired is not None and self._access_token != expired:
                return
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        if self._refresh_token:
            response = self._raw(
                "POST",
                "/api/v1/security/refresh",
                headers={"Authorization": f"Bearer {self._refresh_token}"},
            )
            if response.ok:
                self._access_token = response.json()["access_token"]
                self.session.headers["Authorization"] = f"Bearer {self._access_token}"
                return
        self.login()

    def _csrf(self) -> str:
        if self._csrf_token is None:
            self._csrf_token = self.request("GET", "/api/v1/security/csrf_token/")["result"]
        return self._csrf_token

    def request(self, method: str, path: str, *, expect: tuple[int, ...] = (), **kwargs: Any) -> Any:
        """Send one API call; return its JSON body (or None). Raise SupersetError on failure."""
        method = method.upper()
        if self._access_token is None:
            self.login()
        extra_headers = dict(kwargs.pop("headers", {}) or {})
        for attempt in (1, 2):
            headers = dict(extra_headers)
            if method in WRITE_METHODS and path != "/api/v1/chart/data":
                headers["X-CSRFToken"] = self._csrf()
                headers.setdefault("Referer", self.url)
            with self._lock:
                self.calls[method] += 1
            token = self._access_token
            response = self._raw(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 1:
                self._refresh(token)  # an expired token: refresh once and try again
                continue
            if response.status_code == 400 and attempt == 1 and "CSRF" in response.text:
                self._csrf_token = None  # the CSRF token expired with the session
                continue
            break
        if not response.ok and response.status_code not in expect:
            raise self._fail(response, method)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    # -- conveniences ------------------------------------------------------------------------------
    def iter_list(
        self, resource: str, filters: list[dict[str, Any]] | None = None, **query: Any
    ) -> Iterator[dict[str, Any]]:
        """Every object of a resource (`database`, `dataset`, `chart`, `dashboard`) matching filters."""
        page = 0
        while True:
            q: dict[str, Any] = {"page": page, "page_size": PAGE_SIZE, **query}
            if filters:
                q["filters"] = filters
            body = self.get(f"/api/v1/{resource}/", params={"q": prison.dumps(q)})
            results = body.get("result", [])
            yield from results
            page += 1
            if len(results) < PAGE_SIZE or page * PAGE_SIZE >= body.get("count", 0):
                return

    def get_many(self, paths: list[str], **kwargs: Any) -> list[Any]:
        """GET several independent paths side by side over the session's connection pool, in order.
        (List endpoints stay one call after another: a plan must never see a partial list.)"""
        if self._access_token is None:
            self.login()
        if len(paths) <= 1:
            return [self.get(path, **kwargs) for path in paths]
        with ThreadPoolExecutor(max_workers=min(CONCURRENT_GETS, len(paths))) as pool:
            return list(pool.map(lambda path: self.get(path, **kwargs), paths))

    def find_by_uuid(self, resource: str, uuid: str) -> dict[str, Any] | None:
        found = list(self.iter_list(resource, [{"col": "uuid", "opr": "eq", "value": uuid}]))
        return found[0] if found else None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SupersetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until_healthy(url: str, timeout: float, interval: float = 1.0) -> bool:
    """Poll `<url>/health` until it answers OK or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url.rstrip('/')}/health", timeout=5).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(interval)
    return False
