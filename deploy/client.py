"""A small Superset REST client: one HTTP session, login and token refresh, CSRF, a connect and a read
timeout on every call, retries with backoff, and errors that say what failed in one line (the URL,
masked, the call, what the server did or did not do) without ever carrying a password.

Retries: idempotent calls are retried on 502/503/504 and on dropped connections (`retries` times,
with backoff); a read timeout at most once (a server that did not answer in N seconds will not
answer faster the third time); a connection that cannot be opened (refused, unknown host, connect
timeout) once; TLS failures never; POSTs are never retried once sent.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import prison
import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationParseError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.util.retry import Retry

from pfill.config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, SUPERSET_URL_HINT, superset_url_problem
from pfill.errors import PfillError
from pfill.secrets import mask_text, mask_url

WRITE_METHODS = frozenset({"POST", "PUT", "DELETE", "PATCH"})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = (502, 503, 504)
TIMEOUT_RETRIES = 1  # a read that timed out is sent again at most once
CONNECT_RETRIES = 1  # a connection that could not be opened is tried again once
PAGE_SIZE = 100  # Superset caps list pages at 100
CONCURRENT_GETS = 8  # a single Superset gunicorn worker serves 8 threads by default
# connections kept open: reads of different kinds go side by side, each with its own detail reads
POOL_SIZE = 2 * CONCURRENT_GETS
LOGIN_PATH = "/api/v1/security/login"
TIMEOUT_HINT = "is it up? raise superset.timeout in pfill.yaml or PFILL_SUPERSET_TIMEOUT"
_PLAIN_TO_TLS = "plain HTTP request was sent to HTTPS port"
# what OpenSSL says when the other side does not speak TLS (a plain-HTTP server)
_NOT_TLS = ("wrong version number", "wrong_version_number", "record layer failure", "packet length too long",
            "unknown protocol")


_T = TypeVar("_T")


class SupersetError(PfillError):
    """A Superset API call failed; `status` is the HTTP status (None if no response); `kind` names a
    failure without an answer ("read-timeout", "connect-timeout", "refused", "dns", "tls", "dropped",
    "bad-url") or one with an answer that is not Superset's ("not-superset", "scheme")."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "", method: str = "",
                 kind: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.url = url
        self.method = method
        self.kind = kind


class AuthError(SupersetError):
    pass


class _Retry(Retry):
    """urllib3's Retry with read timeouts counted apart: at most `timeouts` retries of them, while
    dropped connections keep the full `read` budget."""

    def __init__(self, *args: Any, timeouts: int = TIMEOUT_RETRIES, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeouts = timeouts

    def new(self, **kw: Any) -> _Retry:
        kw.setdefault("timeouts", self.timeouts)
        return super().new(**kw)  # type: ignore[return-value]

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None,
                  error: Exception | None = None, _pool: Any = None, _stacktrace: Any = None) -> Retry:
        if not isinstance(error, ReadTimeoutError):
            return super().increment(method, url, response, error, _pool, _stacktrace)
        if self.timeouts <= 0:
            raise MaxRetryError(_pool, url or "", error)
        new = super().increment(method, url, response, error, _pool, _stacktrace)  # POST: raises the timeout
        new.timeouts = self.timeouts - 1  # type: ignore[attr-defined]
        return new


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps (requests -> urllib3 MaxRetryError -> reason -> socket or
    ssl error), outermost first; what was being handled when it was raised (__context__, an earlier
    attempt perhaps) is not its cause and is left out."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(found) < 32:
        current = todo.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [arg for arg in current.args if isinstance(arg, BaseException)]
        reason = getattr(current, "reason", None)
        todo += [reason if isinstance(reason, BaseException) else None, current.__cause__]
    return found


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _content_type(response: requests.Response) -> str:
    return (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()


def _is_json(response: requests.Response) -> bool:
    return "json" in _content_type(response).lower()


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _message(response: requests.Response) -> str:
    """Superset's own words from an error response (JSON `message`/`errors`), an HTML page's title,
    or the start of the body; always one line."""
    try:
        body = response.json()
    except ValueError:
        text = response.text
        if "html" in _content_type(response).lower():
            lower = text.lower()
            start, end = lower.find("<title>"), lower.find("</title>")
            title = _one_line(text[start + 7:end], 120) if 0 <= start < end else ""
            return f"an HTML page ({title})" if title else "an HTML page"
        return _one_line(text) or response.reason or "no body"
    if isinstance(body, dict):
        for key in ("message", "msg", "error", "errors"):
            if body.get(key):
                value = body[key]
                if isinstance(value, list):
                    value = "; ".join(str(v.get("message", v)) if isinstance(v, dict) else str(v) for v in value)
                return _one_line(str(value))
    return _one_line(str(body))


class SupersetClient:
    """Talks to one Superset instance as one user. Counts requests by method in `calls`.

    `timeout`: seconds to wait for an answer to one call; `connect_timeout`: seconds to open a
    connection."""

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = DEFAULT_READ_TIMEOUT,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = url.strip().rstrip("/")
        self.shown_url = mask_url(self.url)
        problem = superset_url_problem(self.url)
        if problem:
            raise SupersetError(f"the Superset URL {self.shown_url!r} {problem}", url=self.shown_url,
                                kind="bad-url", hint=SUPERSET_URL_HINT)
        self.scheme = urlsplit(self.url).scheme.lower()
        self.username = username
        self._password = password
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.calls: Counter[str] = Counter()
        self._access_token: str | None = None
        self._refresh_token: str | None = None
        self._csrf_token: str | None = None
        self._answered = False  # has the server ever answered in HTTP (then its scheme is right)
        self._lock = threading.Lock()  # calls and tokens, when get_many sends requests side by side
        self.session = requests.Session()
        retry = _Retry(
            total=retries,
            connect=min(retries, CONNECT_RETRIES),
            read=retries,
            status=retries,
            other=0,  # TLS failures and the like do not heal by asking again
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=IDEMPOTENT_METHODS,
            raise_on_status=False,
            respect_retry_after_header=True,
            timeouts=min(retries, TIMEOUT_RETRIES),
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"

    # -- plumbing ----------------------------------------------------------------------------------
    @property
    def writes(self) -> int:
        """How many write requests (POST/PUT/DELETE/PATCH) this client has sent, login excluded."""
        return sum(n for method, n in self.calls.items() if method in WRITE_METHODS)

    def _other_scheme(self) -> str:
        other = "http" if self.scheme == "https" else "https"
        return mask_url(other + self.url[len(self.scheme):])

    def _raw(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.url}{path}"
        kwargs.setdefault("timeout", (self.connect_timeout, self.timeout))
        try:
            response = self.session.request(method, url, **kwargs)
        except (requests.RequestException, LocationParseError) as exc:  # the latter raised bare, rarely
            raise self._no_answer(exc, method, path) from exc
        self._answered = True
        return response

    def _no_answer(self, exc: BaseException, method: str, path: str) -> SupersetError:
        """One line for a call that got no HTTP answer, saying why, with a hint."""
        chain = _chain(exc)
        call = f"{method} {path.split('?')[0]}"
        at = f"Superset at {self.shown_url}"

        def error(message: str, kind: str, hint: str | None = None) -> SupersetError:
            return SupersetError(mask_text(message, [self._password]), url=self.shown_url, method=method,
                                 kind=kind, hint=hint and mask_text(hint, [self._password]))

        def first(*types: type[BaseException]) -> BaseException | None:
            return next((e for e in chain if isinstance(e, types)), None)

        if first(ReadTimeoutError, requests.ReadTimeout):
            return error(f"{at} did not answer {call} within {_seconds(self.timeout)}", "read-timeout", TIMEOUT_HINT)
        cert = first(ssl.SSLCertVerificationError)
        if cert is not None:
            why = getattr(cert, "verify_message", "") or _one_line(str(cert), 120)
            return error(f"{at}: its TLS certificate is not trusted ({why})", "tls",
                         "point REQUESTS_CA_BUNDLE at the CA bundle that signed it")
        tls = first(ssl.SSLError, requests.exceptions.SSLError)
        if tls is not None:
            text = " ".join(str(e) for e in chain).lower()
            if self.scheme == "https" and any(sign in text for sign in _NOT_TLS):
                return error(f"{at} does not speak HTTPS (TLS handshake: {_tls_reason(chain)}): it looks like a "
                             "plain-HTTP server", "scheme", f"use {self._other_scheme()} in superset.url")
            return error(f"{at}: the TLS handshake failed ({_tls_reason(chain)})", "tls",
                         "check the scheme and port in superset.url")
        dns = first(NameResolutionError, socket.gaierror)
        if dns is not None:
            host = urlsplit(self.url).hostname or "?"
            return error(f"{at}: cannot resolve the host name {host}", "dns",
                         "check the host in superset.url (and the DNS, VPN or proxy settings)")
        if first(ConnectionRefusedError):
            return error(f"nothing listens at {self.shown_url} (connection refused)", "refused",
                         "is Superset running there, on that port? (the local one: `pfill superset up`)")
        connect = first(ConnectTimeoutError, requests.ConnectTimeout)
        if connect is not None and not isinstance(connect, NewConnectionError):
            return error(f"{at} did not accept a connection within {_seconds(self.connect_timeout)} ({call})",
                         "connect-timeout", "is the host reachable from here (firewall, VPN, proxy)? raise "
                         "superset.connect_timeout in pfill.yaml or PFILL_SUPERSET_CONNECT_TIMEOUT")
        if first(LocationParseError, requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                 requests.exceptions.InvalidSchema):
            return error(f"the Superset URL {self.shown_url!r} is not valid", "bad-url", SUPERSET_URL_HINT)
        if first(ProtocolError, ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected,
                 http.client.BadStatusLine):
            if self.scheme == "http" and not self._answered:
                # a TLS port and a server that died mid-request look alike from here: say both
                return error(f"{at} closed the connection without answering {call}: stopped, or an HTTPS port?",
                             "scheme", f"check that it is up; if it speaks HTTPS, use {self._other_scheme()} "
                             "in superset.url")
            return error(f"{at} dropped the connection during {call}", "dropped",
                         "run the command again; if it repeats, see Superset's log")
        os_error = next((e for e in reversed(chain) if isinstance(e, OSError) and e.strerror), None)
        reason = os_error.strerror if os_error is not None else _one_line(str(chain[-1]), 200)
        return error(f"cannot connect to {at} ({call}): {reason}", "connect")

    def _https_port(self, response: requests.Response, method: str, path: str) -> SupersetError | None:
        """A web server's 400 for plain HTTP sent to its HTTPS port, said as a wrong scheme."""
        if response.status_code != 400 or _PLAIN_TO_TLS not in response.text:
            return None
        return SupersetError(
            f"Superset at {self.shown_url} is an HTTPS port: {method} {path.split('?')[0]} answered 400 "
            f"\"The {_PLAIN_TO_TLS}\"",
            status=400, url=self.shown_url, method=method, kind="scheme",
            hint=f"use {self._other_scheme()} in superset.url",
        )

    def _not_superset(self, response: requests.Response, method: str, path: str) -> SupersetError | None:
        """An answer that shows the address is not Superset's API: a page where JSON was due, or (for
        the login) no such endpoint. Server errors (5xx) are not taken as a sign: a proxy says 502 when
        Superset behind it is down."""
        scheme = self._https_port(response, method, path)
        if scheme is not None:
            return scheme
        status = response.status_code
        page = status < 500 and bool(response.content) and not _is_json(response)
        missing = path == LOGIN_PATH and status in (404, 405, 501)
        if not (page or missing):
            return None
        return SupersetError(
            f"{self.shown_url} does not look like Superset: {method} {path.split('?')[0]} answered {status} "
            f"{_content_type(response)}",
            status=status, url=self.shown_url, method=method, kind="not-superset",
            hint="superset.url must be Superset's base address (no /login, no sign-in page of a proxy in the way)",
        )

    def _fail(self, response: requests.Response, method: str) -> SupersetError:
        # without its query string: a rison list query, URL-encoded, is noise in a one-line message
        url = mask_url(response.request.url or f"{self.url}").split("?", 1)[0]
        path = url[len(self.shown_url):] if url.startswith(self.shown_url) else url
        scheme = self._https_port(response, method, path)
        if scheme is not None:
            return scheme
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
        response = self._raw("POST", LOGIN_PATH, json=payload)
        wrong = self._not_superset(response, "POST", LOGIN_PATH)
        if wrong is not None:
            raise wrong
        if response.status_code == 401:
            raise AuthError(
                f"login as {self.username!r} at {self.shown_url} failed with 401: wrong user name or password",
                status=401,
                url=f"{self.shown_url}{LOGIN_PATH}",
                method="POST",
            )
        if not response.ok:
            raise self._fail(response, "POST")
        body = self._json(response, "POST", LOGIN_PATH)
        if not isinstance(body, dict) or not body.get("access_token"):
            raise SupersetError(
                f"{self.shown_url} does not look like Superset: POST {LOGIN_PATH} answered {response.status_code} "
                f"{_content_type(response)} without an access token",
                status=response.status_code, url=self.shown_url, method="POST", kind="not-superset",
                hint="superset.url must be Superset's base address",
            )
        self._access_token = body["access_token"]
        self._refresh_token = body.get("refresh_token")
        self.session.headers["Authorization"] = f"Bearer {self._access_token}"
        self._csrf_token = None

    def _json(self, response: requests.Response, method: str, path: str) -> Any:
        """The JSON body of an answer; an answer that is not JSON is one error saying so."""
        wrong = self._not_superset(response, method, path)
        if wrong is not None:
            raise wrong
        try:
            return response.json()
        except ValueError:
            raise SupersetError(
                f"{self.shown_url} does not look like Superset: {method} {path.split('?')[0]} answered "
                f"{response.status_code} {_content_type(response)} that is not valid JSON",
                status=response.status_code, url=self.shown_url, method=method, kind="not-superset",
            ) from None

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
            body = self._json(response, "POST", "/api/v1/security/refresh") if response.ok else None
            if isinstance(body, dict) and body.get("access_token"):
                self._access_token = body["access_token"]
                self.session.headers["Authorization"] = f"Bearer {self._access_token}"
                return
        self.login()  # no refresh token, or it expired too

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
        if not response.ok and not _is_json(response):
            return None  # an expected failure (`expect`) with a page instead of JSON
        return self._json(response, method, path)

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
        """Every object of a resource (`database`, `dataset`, `chart`, `dashboard`) matching filters.
        The first page says how many there are; the pages after it are read side by side (paging is
        by offset either way: read one after another they would see the same rows)."""

        def page_call(page: int) -> tuple[str, str, dict[str, Any]]:
            q: dict[str, Any] = {"page": page, "page_size": PAGE_SIZE, **query}
            if filters:
                q["filters"] = filters
            return "GET", f"/api/v1/{resource}/", {"params": {"q": prison.dumps(q)}}

        method, path, first = page_call(0)
        page, body = 0, self.request(method, path, **first)
        results = body.get("result", [])
        yield from results
        while len(results) == PAGE_SIZE and (page + 1) * PAGE_SIZE < body.get("count", 0):
            pages = range(page + 1, -(-body["count"] // PAGE_SIZE))  # the rest, as the latest count has it
            for body in self.send_many([page_call(p) for p in pages]):
                results = body.get("result", [])
                yield from results
            page = pages[-1]

    def get_many(self, paths: list[str], **kwargs: Any) -> list[Any]:
        """GET several independent paths side by side over the session's connection pool, in order."""
        return self.send_many([("GET", path, kwargs) for path in paths])

    def put_many(self, calls: list[tuple[str, Any]]) -> list[Any]:
        """PUT a JSON body to each of several different objects side by side, in order."""
        return self.send_many([("PUT", path, {"json": body}) for path, body in calls])

    def send_many(self, calls: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
        """Independent calls (method, path, keyword arguments) side by side; answers in order; the
        first failure, in order, is raised once every call has ended."""
        if self._access_token is None:
            self.login()
        if any(method.upper() in WRITE_METHODS for method, _, _ in calls):
            self._csrf()  # once, before the threads ask for it
        return self.together(*[lambda call=call: self.request(call[0], call[1], **call[2]) for call in calls])

    def together(self, *work: Callable[[], _T]) -> list[_T]:
        """Run independent pieces of work (each a few calls of its own) side by side; results in order
        (reads of different lists side by side were checked against the same reads one after another,
        answer for answer)."""
        if len(work) <= 1:
            return [piece() for piece in work]
        with ThreadPoolExecutor(max_workers=min(CONCURRENT_GETS, len(work))) as pool:
            futures = [pool.submit(piece) for piece in work]
            return [future.result() for future in futures]

    def find_by_uuid(self, resource: str, uuid: str) -> dict[str, Any] | None:
        found = list(self.iter_list(resource, [{"col": "uuid", "opr": "eq", "value": uuid}]))
        return found[0] if found else None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> SupersetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tls_reason(chain: list[BaseException]) -> str:
    reason = next((getattr(e, "reason", None) for e in chain if isinstance(e, ssl.SSLError)
                   and isinstance(getattr(e, "reason", None), str)), None)
    return reason.lower().replace("_", " ") if reason else "failed"
