"""Server-side verification of AWS Signature Version 4, as boto3's ``sagemaker`` client signs.

The client (AWS JSON 1.1) sends ``POST /`` with ``X-Amz-Target: SageMaker.<Op>``,
``X-Amz-Date`` and ``Authorization: AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/sagemaker/
aws4_request, SignedHeaders=..., Signature=...`` (plus ``X-Amz-Security-Token`` with temporary
credentials). :func:`authenticate` rebuilds the canonical request the way
``botocore.auth.SigV4Auth`` does (botocore 1.44): only the headers the request lists in
``SignedHeaders``, values trimmed with inner runs of white space collapsed; the path with dot
segments and empty segments removed, then percent-encoded once more (non-S3 rule: a path that
arrives as ``/a%20b`` is signed as ``/a%2520b``); the query string split on ``&``, each name and
value re-encoded (RFC 3986 unreserved characters kept) and sorted; the payload hash is the
SHA-256 of the body. It derives the signing key from the secret in the credentials file and
compares signatures in constant time.

Errors
------
:class:`AuthError` carries the code a boto3 user would see from real AWS. botocore's JSON error
parser (``botocore/parsers.py``, ``BaseJSONParser._do_error_parse``) takes the code from the body's
``__type`` (dropping any ``namespace#`` prefix) and the message from ``message``, so answer with
``status`` and :meth:`AuthError.response_body`:

=========================================  ======  ==========================================
code                                       status  when
=========================================  ======  ==========================================
``MissingAuthenticationTokenException``    403     no ``Authorization`` header
``IncompleteSignatureException``           400     malformed header or credential, unsupported
                                                   algorithm, ``host``/``x-amz-date`` not signed,
                                                   a signed header absent, no/bad ``X-Amz-Date``
``UnrecognizedClientException``            400     access key id not in the credentials file
``InvalidSignatureException``              400     wrong signature, credential scope (service,
                                                   date, terminator) wrong, request older or
                                                   newer than ``max_skew``, payload hash header
                                                   not the body's hash
=========================================  ======  ==========================================

What these are based on (answers of real AWS JSON-protocol services, as reported publicly):

* SageMaker answers an unsigned request with HTTP 403 and ``x-amzn-ErrorType:
  MissingAuthenticationTokenException``, message "Missing Authentication Token"
  (github.com/aws/amazon-sagemaker-examples issue 290); the AWS "Common Errors" reference pages
  list MissingAuthenticationToken as 403.
* Malformed ``Authorization``: ``{"__type":"IncompleteSignatureException", "message":"'...' not a
  valid key=value pair (missing equal-sign) in Authorization header: ..."}`` with 400 from Cloud9
  and DynamoDB (iann0036/cloud9-sync issue 10, awslabs/fhir-works-on-aws-deployment issue 379);
  "'accept' is named as a SignedHeader, but it does not exist in the HTTP request." (AppSync,
  awslabs/aws-mobile-appsync-sdk-js issue 702); "Authorization header requires 'Credential'
  parameter. ..." (SES/API Gateway, brendanhay/amazonka issue 316).
* Unknown key: ``UnrecognizedClientException`` "The security token included in the request is
  invalid." with 400 from SageMaker (aws/amazon-sagemaker-operator-for-k8s issue 99).
* Scope: ``{"__type":"InvalidSignatureException","message":"Credential should be scoped to correct
  service: 'sagemaker'. "}`` with 400 from SageMaker (disneystreaming/smithy4s issue 1568,
  JuliaCloud/AWS.jl issue 334).
* Clock skew: ``InvalidSignatureException`` 400 "Signature expired: 20140325T143453Z is now earlier
  than 20140325T143751Z (20140325T145251Z - 15 min.)" (aws/aws-sdk-js issue 254); the future-side
  twin is "Signature not yet current: ... is still later than ... (... + 15 min.)".

Not supported, deliberately: presigned (query-string) signatures, the ``Date`` header in place of
``X-Amz-Date``, SigV4a, ``UNSIGNED-PAYLOAD`` and streaming payloads. There is no STS here: an
``X-Amz-Security-Token`` is accepted (and returned by :func:`authenticate`) but not checked; the
access key id and its secret are what authenticate the caller.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, unquote

from mlineage import arns
from mlineage.errors import ConfigurationError, MlineageError

ALGORITHM: Final = "AWS4-HMAC-SHA256"
TERMINATOR: Final = "aws4_request"
AMZ_DATE_FORMAT: Final = "%Y%m%dT%H%M%SZ"

MISSING_AUTHENTICATION_TOKEN: Final = "MissingAuthenticationTokenException"  # noqa: S105 (a code)
INCOMPLETE_SIGNATURE: Final = "IncompleteSignatureException"
UNRECOGNIZED_CLIENT: Final = "UnrecognizedClientException"
INVALID_SIGNATURE: Final = "InvalidSignatureException"

_STATUS: Final[Mapping[str, int]] = {
    MISSING_AUTHENTICATION_TOKEN: 403,
    INCOMPLETE_SIGNATURE: 400,
    UNRECOGNIZED_CLIENT: 400,
    INVALID_SIGNATURE: 400,
}

_SIGNATURE_MISMATCH: Final = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

_AMZ_DATE_RE: Final = re.compile(r"\d{8}T\d{6}Z")
_SHA256_HEX_RE: Final = re.compile(r"[0-9a-f]{64}")
# An access key id ends up in "Credential=AKID/date/...": no "/", ",", "=" or white space.
_ACCESS_KEY_RE: Final = re.compile(r"[A-Za-z0-9_.~+-]+")
_API_KEY_RE: Final = re.compile(r"[A-Za-z0-9_.~+/=-]+")
_ENTRY_FIELDS: Final = frozenset({"secret_access_key", "account_id"})
_OPTIONAL_FIELDS: Final = frozenset({"api_keys"})


class AuthError(MlineageError):
    """A request failed authentication.

    ``code`` is the AWS error code (what boto3 reports as ``Error.Code``), ``status`` the HTTP
    status to answer with, and ``str(err)`` the message.
    """

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = _STATUS.get(code, 400) if status is None else status

    def response_body(self) -> dict[str, str]:
        """The AWS JSON 1.1 error body botocore parses: ``{"__type": code, "message": ...}``."""
        return {"__type": self.code, "message": self.message}


@dataclass(frozen=True)
class Credential:
    """One entry of the credentials file: an access key, its secret and the account it acts as."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    account_id: str
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    """Bearer keys acting as this entry's account (``POST /api/v1/lineage``: clients such as
    OpenLineage's, which send ``Authorization: Bearer KEY`` instead of signing)."""


class Credentials:
    """The access keys the server accepts, by access key id."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        by_id: dict[str, Credential] = {}
        by_api_key: dict[bytes, Credential] = {}
        for credential in credentials:
            if credential.access_key_id in by_id:
                raise ConfigurationError(
                    f"access key id {credential.access_key_id!r} is defined twice"
                )
            by_id[credential.access_key_id] = credential
            for key in credential.api_keys:
                digest = _key_digest(key)
                if digest in by_api_key:
                    raise ConfigurationError(
                        f"an API key of {credential.access_key_id!r} is also another entry's"
                    )
                by_api_key[digest] = credential
        self._by_id = by_id
        # by the key's digest: a dict lookup on a hash leaks nothing about the key itself
        self._by_api_key = by_api_key

    @classmethod
    def load(cls, path: Path) -> Credentials:
        """Read a JSON credentials file.

        Its shape: ``{"AKID...": {"secret_access_key": "...", "account_id": "123456789012"}}``,
        one entry per access key id. Raises :class:`ConfigurationError` naming the file (and the
        entry) when the file is missing, unreadable, not JSON, or an entry is malformed.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(
                f"credentials file {path}: cannot read it ({exc.strerror or exc})"
            ) from exc
        except UnicodeDecodeError as exc:
            raise ConfigurationError(f"credentials file {path}: not UTF-8 text ({exc})") from exc
        try:
            document: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"credentials file {path}: not valid JSON: {exc.msg} "
                f"at line {exc.lineno} column {exc.colno}"
            ) from exc
        if not isinstance(document, dict):
            raise ConfigurationError(
                f"credentials file {path}: expected a JSON object mapping access key ids to "
                '{"secret_access_key": ..., "account_id": ...}, got '
                f"{type(document).__name__}"
            )
        if not document:
            raise ConfigurationError(f"credentials file {path}: defines no credentials")
        return cls(_parse_entry(path, key, value) for key, value in document.items())

    def get(self, access_key_id: str) -> Credential | None:
        """The credential with this access key id, or None if there is none."""
        return self._by_id.get(access_key_id)

    def by_api_key(self, key: str) -> Credential | None:
        """The entry one of whose ``api_keys`` is ``key``, or None."""
        return self._by_api_key.get(_key_digest(key))

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Credential]:
        return iter(self._by_id.values())

    def __repr__(self) -> str:
        return f"Credentials(access_key_ids={sorted(self._by_id)!r})"


def _key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _parse_entry(path: Path, access_key_id: str, entry: Any) -> Credential:
    where = f"credentials file {path}, entry {access_key_id!r}"
    if not _ACCESS_KEY_RE.fullmatch(access_key_id):
        raise ConfigurationError(
            f"{where}: an access key id is letters, digits and '_.~+-' only (no '/', ',', '=' "
            "or white space)"
        )
    if not isinstance(entry, dict):
        raise ConfigurationError(
            f'{where}: expected an object {{"secret_access_key": ..., "account_id": ...}}, '
            f"got {type(entry).__name__}"
        )
    unknown = sorted(set(entry) - _ENTRY_FIELDS - _OPTIONAL_FIELDS)
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; "
            "expected 'secret_access_key' and 'account_id' (and optionally 'api_keys')"
        )
    missing = sorted(_ENTRY_FIELDS - set(entry))
    if missing:
        raise ConfigurationError(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
    secret = entry["secret_access_key"]
    if not isinstance(secret, str) or not secret:
        raise ConfigurationError(f"{where}: 'secret_access_key' must be a non-empty string")
    account = entry["account_id"]
    if not arns.is_account(account):
        raise ConfigurationError(
            f"{where}: 'account_id' must be a string of 12 digits, e.g. \"123456789012\", "
            f"got {account!r}"
        )
    api_keys = entry.get("api_keys", [])
    if not isinstance(api_keys, list) or not all(
        isinstance(k, str) and len(k) >= 16 and _API_KEY_RE.fullmatch(k) for k in api_keys
    ):
        raise ConfigurationError(
            f"{where}: 'api_keys' must be a list of strings of at least 16 letters, digits or "
            "'_.~+-/=' (e.g. from `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
        )
    return Credential(
        access_key_id=access_key_id,
        secret_access_key=secret,
        account_id=account,
        api_keys=tuple(api_keys),
    )


@dataclass(frozen=True)
class Authenticated:
    """What a verified request tells: who signed it, for which region, and when."""

    credential: Credential
    region: str
    signed_at: datetime
    session_token: str | None = field(default=None, repr=False)


def authenticate(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
    service: str = "sagemaker",
) -> Authenticated:
    """Verify a request's SigV4 signature; return who signed it and for which region.

    ``path`` and ``query`` are the request target's parts exactly as received (still
    percent-encoded, without the ``?``). Header names are matched case-insensitively; if a
    mapping holds one name under several spellings their values are joined with ``,`` (as a
    repeated header is). ``now`` (default: the clock; a naive value is taken as UTC) is compared
    with ``X-Amz-Date``: a request more than ``max_skew`` either side is refused. Raises
    :class:`AuthError`.
    """
    lowered = _lower_headers(headers)
    authorization = lowered.get("authorization", "").strip()
    if not authorization:
        raise AuthError(MISSING_AUTHENTICATION_TOKEN, "Missing Authentication Token")

    credential_field, signed_headers, signature = _parse_authorization(authorization)
    access_key_id, scope_date, region, scope_service, terminator = _parse_credential(
        credential_field
    )

    for required, shown in (("host", "Host"), ("x-amz-date", "X-Amz-Date")):
        if required not in signed_headers:
            raise AuthError(
                INCOMPLETE_SIGNATURE,
                f"'{shown}' must be a 'SignedHeader' in the AWS Authorization.",
            )
    for name in signed_headers:
        if name not in lowered:
            raise AuthError(
                INCOMPLETE_SIGNATURE,
                f"'{name}' is named as a SignedHeader, but it does not exist in the HTTP request.",
            )

    amz_date = lowered["x-amz-date"].strip()
    signed_at = _parse_amz_date(amz_date)

    if scope_date != amz_date[:8]:
        raise AuthError(
            INVALID_SIGNATURE,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'.",
        )
    if not region:
        raise AuthError(INVALID_SIGNATURE, "Credential should be scoped to a valid region. ")
    if scope_service != service:
        raise AuthError(
            INVALID_SIGNATURE, f"Credential should be scoped to correct service: '{service}'. "
        )
    if terminator != TERMINATOR:
        raise AuthError(
            INVALID_SIGNATURE,
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'. ",
        )

    credential = credentials.get(access_key_id)
    if credential is None:
        raise AuthError(
            UNRECOGNIZED_CLIENT, "The security token included in the request is invalid."
        )

    _check_skew(amz_date, signed_at, now, max_skew)

    payload_hash = hashlib.sha256(body).hexdigest()
    declared = lowered.get("x-amz-content-sha256")
    if declared is not None and declared.strip() != payload_hash:
        raise AuthError(
            INVALID_SIGNATURE,
            "The provided 'x-amz-content-sha256' header does not match what was computed"
            + (
                " (UNSIGNED-PAYLOAD and streaming payloads are not supported: sign the body)."
                if not _SHA256_HEX_RE.fullmatch(declared.strip())
                else "."
            ),
        )

    canonical = canonical_request(method, path, query, lowered, signed_headers, payload_hash)
    scope = f"{scope_date}/{region}/{scope_service}/{terminator}"
    to_sign = string_to_sign(amz_date, scope, canonical)
    key = signing_key(credential.secret_access_key, scope_date, region, scope_service)
    expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    provided = signature if _SHA256_HEX_RE.fullmatch(signature) else ""
    if not hmac.compare_digest(expected.encode("ascii"), provided.encode("ascii")):
        raise AuthError(INVALID_SIGNATURE, _SIGNATURE_MISMATCH)

    token = lowered.get("x-amz-security-token")
    return Authenticated(
        credential=credential,
        region=region,
        signed_at=signed_at,
        session_token=token.strip() if token is not None else None,
    )


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    lowered: dict[str, str] = {}
    for name, value in headers.items():
        key = name.strip().lower()
        lowered[key] = f"{lowered[key]},{value}" if key in lowered else value
    return lowered


def _parse_authorization(header: str) -> tuple[str, tuple[str, ...], str]:
    """(Credential, sorted SignedHeaders, Signature) of an ``Authorization`` header."""
    algorithm, _, rest = header.partition(" ")
    if algorithm != ALGORITHM:
        raise AuthError(
            INCOMPLETE_SIGNATURE,
            f"Unsupported AWS 'algorithm': '{algorithm}' (only {ALGORITHM} is accepted).",
        )
    params: dict[str, str] = {}
    for raw_part in rest.split(","):
        part = raw_part.strip()
        if not part:
            continue
        name, equals, value = part.partition("=")
        if not equals:
            raise AuthError(
                INCOMPLETE_SIGNATURE,
                f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization "
                "header.",
            )
        name = name.strip()
        if name in params:
            raise AuthError(
                INCOMPLETE_SIGNATURE, f"'{name}' appears more than once in Authorization header."
            )
        params[name] = value.strip()
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not params.get(name)
    ]
    if missing:
        raise AuthError(INCOMPLETE_SIGNATURE, " ".join(missing))
    names = params["SignedHeaders"].split(";")
    if any(not name.strip() for name in names):
        raise AuthError(
            INCOMPLETE_SIGNATURE,
            f"SignedHeaders '{params['SignedHeaders']}' has an empty header name.",
        )
    signed_headers = tuple(sorted({name.strip().lower() for name in names}))
    return params["Credential"], signed_headers, params["Signature"]


def _parse_credential(value: str) -> tuple[str, str, str, str, str]:
    parts = value.split("/")
    if len(parts) != 5:
        raise AuthError(
            INCOMPLETE_SIGNATURE,
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{value}'",
        )
    access_key_id, date, region, scope_service, terminator = parts
    if not access_key_id:
        raise AuthError(INCOMPLETE_SIGNATURE, f"Credential '{value}' has no access key id.")
    if not re.fullmatch(r"\d{8}", date):
        raise AuthError(
            INCOMPLETE_SIGNATURE,
            f"Credential '{value}': the date must be YYYYMMDD, got '{date}'.",
        )
    return access_key_id, date, region, scope_service, terminator


def _parse_amz_date(value: str) -> datetime:
    if _AMZ_DATE_RE.fullmatch(value):
        try:
            return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise AuthError(
        INCOMPLETE_SIGNATURE,
        f"X-Amz-Date must be an ISO 8601 basic-format UTC time like 20261125T120000Z, "
        f"got '{value}'.",
    )


def _check_skew(
    amz_date: str, signed_at: datetime, now: datetime | None, max_skew: timedelta
) -> None:
    current = datetime.now(UTC) if now is None else now
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    current = current.astimezone(UTC)
    seconds = int(max_skew.total_seconds())
    window = f"{seconds // 60} min." if seconds % 60 == 0 else f"{seconds} sec."
    if signed_at < current - max_skew:
        earliest = (current - max_skew).strftime(AMZ_DATE_FORMAT)
        raise AuthError(
            INVALID_SIGNATURE,
            f"Signature expired: {amz_date} is now earlier than {earliest} "
            f"({current.strftime(AMZ_DATE_FORMAT)} - {window})",
        )
    if signed_at > current + max_skew:
        latest = (current + max_skew).strftime(AMZ_DATE_FORMAT)
        raise AuthError(
            INVALID_SIGNATURE,
            f"Signature not yet current: {amz_date} is still later than {latest} "
            f"({current.strftime(AMZ_DATE_FORMAT)} + {window})",
        )


def canonical_uri(path: str) -> str:
    """The SigV4 canonical URI of a raw (still percent-encoded) path, for non-S3 services.

    Like botocore: remove ``.``/``..`` and empty segments (keeping a trailing slash), then
    percent-encode everything but ``/`` and ``~`` -- so an encoded ``%20`` becomes ``%2520``.
    """
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if not segment or segment == ".":
            continue
        if segment == "..":
            if segments:
                segments.pop()
        else:
            segments.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and segments else ""
    return quote(first + "/".join(segments) + last, safe="/~")


def canonical_query_string(query: str) -> str:
    """Names and values re-encoded (only ``A-Za-z0-9-_.~`` left bare), sorted, joined by ``&``."""
    pairs: list[tuple[str, str]] = []
    for pair in query.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_request(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    payload_hash: str,
) -> str:
    """The SigV4 canonical request; ``headers`` must have lowercase names."""
    names = sorted(set(signed_headers))
    canonical_headers = "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            canonical_uri(path),
            canonical_query_string(query),
            canonical_headers,
            ";".join(names),
            payload_hash,
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """``AWS4-HMAC-SHA256``, the timestamp, the scope and the canonical request's hash."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """HMAC chain ``AWS4<secret>`` -> date -> region -> service -> ``aws4_request``."""
    key = f"AWS4{secret_access_key}".encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key
