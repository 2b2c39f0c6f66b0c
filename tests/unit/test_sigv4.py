"""SigV4 verification against requests signed by botocore itself, as boto3's sagemaker client
signs them (and one sent by a real boto3 client to a loopback server)."""

# Fake keys and tokens, made up for these tests.

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError
from botocore.parsers import create_parser

from mlineage.errors import ConfigurationError
from mlineage.server.sigv4 import (
    Authenticated,
    AuthError,
    Credential,
    Credentials,
    authenticate,
)

AKID = "AKIAMLINEAGETEST0001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ACCOUNT = "123456789012"
OTHER = Credential("AKIAMLINEAGETEST0002", "another-secret", "210987654321")
CREDENTIALS = Credentials([Credential(AKID, SECRET, ACCOUNT), OTHER])
ENDPOINT = "http://127.0.0.1:8080"
TARGET = "SageMaker.ListExperiments"
USER_AGENT = "Boto3/1.44.5 md/Botocore#1.44.8 ua/2.1 os/linux lang/python#3.11.7"


@dataclass
class Captured:
    """A request as the server sees it: raw path and query, headers by name, body bytes."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def signed_at(self) -> datetime:
        stamp = next(v for k, v in self.headers.items() if k.lower() == "x-amz-date")
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)

    def authenticate(self, **kwargs: object) -> Authenticated:
        if "now" not in kwargs:
            kwargs["now"] = self.signed_at + timedelta(seconds=2)
        return authenticate(
            self.method,
            self.path,
            self.query,
            self.headers,
            self.body,
            CREDENTIALS,
            **kwargs,  # type: ignore[arg-type]
        )

    def verify(self, **kwargs: object) -> Credential:
        return self.authenticate(**kwargs).credential

    def with_header(self, name: str, value: str | None) -> Captured:
        headers = {k: v for k, v in self.headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = value
        return replace(self, headers=headers)


def signed(
    body: bytes = b'{"MaxResults": 5}',
    *,
    url: str = ENDPOINT + "/",
    access_key: str = AKID,
    secret_key: str = SECRET,
    token: str | None = None,
    region: str = "us-east-1",
    service: str = "sagemaker",
    extra_headers: dict[str, str] | None = None,
    context: dict[str, object] | None = None,
) -> Captured:
    """Sign a request the way boto3's sagemaker client does, then 'send' it: add the headers the
    HTTP layer adds after signing (Host, Content-Length, amz-sdk-*)."""
    headers = {
        "X-Amz-Target": TARGET,
        "Content-Type": "application/x-amz-json-1.1",
        "User-Agent": USER_AGENT,
        **(extra_headers or {}),
    }
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context.update(context or {})
    SigV4Auth(BotoCredentials(access_key, secret_key, token), service, region).add_auth(request)
    parts = urlsplit(url)
    sent = {"Host": parts.netloc, **dict(request.headers.items())}
    sent["Content-Length"] = str(len(body))
    sent["amz-sdk-invocation-id"] = "5b0b5a4e-0f8a-4a43-9d0e-6d1b1e9c7a10"
    sent["amz-sdk-request"] = "attempt=1; max=3"
    return Captured("POST", parts.path, parts.query, sent, body)


def auth_params(request: Captured) -> dict[str, str]:
    _, _, rest = request.headers["Authorization"].partition(" ")
    return dict(part.strip().split("=", 1) for part in rest.split(","))


def with_auth(request: Captured, **params: str) -> Captured:
    merged = {**auth_params(request), **params}
    value = "AWS4-HMAC-SHA256 " + ", ".join(f"{k}={v}" for k, v in merged.items())
    return request.with_header("Authorization", value)


def error_of(request: Captured, **kwargs: object) -> AuthError:
    with pytest.raises(AuthError) as info:
        request.verify(**kwargs)
    return info.value


# ---- accepted ------------------------------------------------------------------------------


def test_valid_request_returns_the_credential() -> None:
    credential = signed().verify()
    assert credential == Credential(AKID, SECRET, ACCOUNT)
    assert credential.account_id == ACCOUNT


def test_other_key_maps_to_its_own_account() -> None:
    request = signed(access_key=OTHER.access_key_id, secret_key=OTHER.secret_access_key)
    assert request.verify().account_id == "210987654321"


def test_empty_body_is_valid() -> None:
    assert signed(b"").verify().access_key_id == AKID


def test_header_names_are_matched_case_insensitively() -> None:
    request = signed()
    assert replace(request, headers={k.lower(): v for k, v in request.headers.items()}).verify()
    assert replace(request, headers={k.upper(): v for k, v in request.headers.items()}).verify()


def test_changing_an_unsigned_header_keeps_it_valid() -> None:
    request = signed()
    assert "user-agent" not in auth_params(request)["SignedHeaders"].split(";")
    assert request.with_header("User-Agent", "something else/1.0").verify()
    assert request.with_header("amz-sdk-request", "attempt=2; max=3").verify()
    assert request.with_header("X-Unsigned-Extra", "added in transit").verify()


def test_signed_header_values_are_compared_after_trimming() -> None:
    request = signed()
    assert request.with_header("X-Amz-Target", f"  {TARGET}  ").verify()


def test_session_token_signed_still_validates() -> None:
    request = signed(token="FQoGZXIvYXdzEXAMPLETOKEN//==")
    assert "x-amz-security-token" in auth_params(request)["SignedHeaders"].split(";")
    assert request.verify().access_key_id == AKID
    result = request.authenticate(now=request.signed_at)
    assert result.session_token == "FQoGZXIvYXdzEXAMPLETOKEN//=="
    # the token is signed: changing it breaks the signature
    assert error_of(request.with_header("X-Amz-Security-Token", "other")).code == (
        "InvalidSignatureException"
    )


def test_any_region_is_accepted_and_recorded() -> None:
    request = signed(region="eu-west-1")
    result = request.authenticate(now=request.signed_at)
    assert result.region == "eu-west-1"
    assert result.credential.access_key_id == AKID
    assert result.signed_at == request.signed_at


def test_content_sha256_header_matching_the_body_is_valid() -> None:
    body = b'{"MaxResults": 7}'
    request = signed(body, extra_headers={"X-Amz-Content-SHA256": hashlib.sha256(body).hexdigest()})
    assert "x-amz-content-sha256" in auth_params(request)["SignedHeaders"].split(";")
    assert request.verify().access_key_id == AKID


def test_path_and_query_are_canonicalized_like_botocore() -> None:
    url = ENDPOINT + "/a%20b/./c//d/../e~f?b=2&a=1&a=0&x=%2F%3D&empty="
    request = signed(url=url)
    assert request.path == "/a%20b/./c//d/../e~f"
    assert request.verify().access_key_id == AKID
    assert error_of(replace(request, query="b=2&a=1&a=9&x=%2F%3D&empty=")).code == (
        "InvalidSignatureException"
    )
    assert error_of(replace(request, path="/a%20b/c/other")).code == "InvalidSignatureException"


def test_within_skew_on_both_sides_is_valid() -> None:
    request = signed()
    assert request.verify(now=request.signed_at + timedelta(minutes=15))
    assert request.verify(now=request.signed_at - timedelta(minutes=15))


# ---- refused -------------------------------------------------------------------------------


def test_wrong_secret_is_invalid_signature() -> None:
    err = error_of(signed(secret_key="not-the-secret"))
    assert (err.code, err.status) == ("InvalidSignatureException", 400)
    assert "does not match the signature you provided" in str(err)
    assert err.response_body() == {"__type": "InvalidSignatureException", "message": str(err)}


def test_unknown_access_key_is_unrecognized_client() -> None:
    err = error_of(signed(access_key="AKIAUNKNOWN000000000"))
    assert (err.code, err.status) == ("UnrecognizedClientException", 400)
    assert str(err) == "The security token included in the request is invalid."


def test_missing_authorization_is_missing_authentication_token() -> None:
    for value in (None, "", "   "):
        err = error_of(signed().with_header("Authorization", value))
        assert (err.code, err.status) == ("MissingAuthenticationTokenException", 403)
        assert str(err) == "Missing Authentication Token"


def test_tampered_body_is_invalid_signature() -> None:
    request = signed(b'{"MaxResults": 5}')
    err = error_of(replace(request, body=b'{"MaxResults": 6}'))
    assert err.code == "InvalidSignatureException"


def test_tampered_signed_header_is_invalid_signature() -> None:
    request = signed()
    assert error_of(request.with_header("X-Amz-Target", "SageMaker.DeleteExperiment")).code == (
        "InvalidSignatureException"
    )
    assert error_of(request.with_header("Host", "127.0.0.1:9999")).code == (
        "InvalidSignatureException"
    )


def test_tampered_method_or_signature_is_invalid_signature() -> None:
    request = signed()
    assert error_of(replace(request, method="PUT")).code == "InvalidSignatureException"
    signature = auth_params(request)["Signature"]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert error_of(with_auth(request, Signature=flipped)).code == "InvalidSignatureException"
    assert error_of(with_auth(request, Signature="not-hex")).code == "InvalidSignatureException"


def test_signature_expired_beyond_max_skew() -> None:
    request = signed()
    now = request.signed_at + timedelta(minutes=15, seconds=1)
    err = error_of(request, now=now)
    assert (err.code, err.status) == ("InvalidSignatureException", 400)
    stamp = request.headers["X-Amz-Date"]
    earliest = (now - timedelta(minutes=15)).strftime("%Y%m%dT%H%M%SZ")
    current = now.strftime("%Y%m%dT%H%M%SZ")
    assert str(err) == (
        f"Signature expired: {stamp} is now earlier than {earliest} ({current} - 15 min.)"
    )


def test_signature_from_the_future_beyond_max_skew() -> None:
    request = signed()
    err = error_of(request, now=request.signed_at - timedelta(minutes=16))
    assert err.code == "InvalidSignatureException"
    assert str(err).startswith("Signature not yet current:")


def test_max_skew_is_configurable() -> None:
    request = signed()
    err = error_of(
        request, now=request.signed_at + timedelta(minutes=2), max_skew=timedelta(minutes=1)
    )
    assert str(err).startswith("Signature expired:")
    assert str(err).endswith("- 1 min.)")


def test_naive_now_is_taken_as_utc() -> None:
    request = signed()
    naive = request.signed_at.replace(tzinfo=None) + timedelta(minutes=20)
    assert "expired" in str(error_of(request, now=naive))


@pytest.mark.parametrize(
    "authorization",
    [
        "AWS4-HMAC-SHA1 Credential=x, SignedHeaders=host, Signature=00",
        "Bearer abc.def.ghi",
        "AWS4-HMAC-SHA256",
        "AWS4-HMAC-SHA256 Credential=AKIAMLINEAGETEST0001/20261125/us-east-1/sagemaker/"
        "aws4_request",
        "AWS4-HMAC-SHA256 Credential AKIAMLINEAGETEST0001/20261125, SignedHeaders=host, "
        "Signature=0",
        "AWS4-HMAC-SHA256 Credential=AKIAMLINEAGETEST0001/20261125/us-east-1/sagemaker, "
        "SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAMLINEAGETEST0001/2026-11-25/us-east-1/sagemaker/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=AKIAMLINEAGETEST0001/20261125/us-east-1/sagemaker/"
        "aws4_request, SignedHeaders=host;;x-amz-date, Signature=00",
    ],
)
def test_malformed_authorization_is_incomplete_signature(authorization: str) -> None:
    err = error_of(signed().with_header("Authorization", authorization))
    assert (err.code, err.status) == ("IncompleteSignatureException", 400)


def test_missing_authorization_parameters_are_named() -> None:
    err = error_of(signed().with_header("Authorization", "AWS4-HMAC-SHA256 Signature=00"))
    assert str(err) == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires 'SignedHeaders' parameter."
    )


def test_host_and_x_amz_date_must_be_signed() -> None:
    request = signed()
    names = auth_params(request)["SignedHeaders"].split(";")
    for required in ("host", "x-amz-date"):
        others = ";".join(n for n in names if n != required)
        err = error_of(with_auth(request, SignedHeaders=others))
        assert err.code == "IncompleteSignatureException"
        assert "must be a 'SignedHeader'" in str(err)


def test_signed_header_absent_from_request_is_incomplete_signature() -> None:
    err = error_of(signed().with_header("X-Amz-Target", None))
    assert err.code == "IncompleteSignatureException"
    assert str(err) == (
        "'x-amz-target' is named as a SignedHeader, but it does not exist in the HTTP request."
    )


def test_missing_or_malformed_x_amz_date_is_incomplete_signature() -> None:
    request = signed()
    missing = request.with_header("X-Amz-Date", None)
    assert error_of(missing, now=request.signed_at).code == "IncompleteSignatureException"
    for bad in ("2026-11-25T12:00:00Z", "20261125T120000", "20261399T120000Z", ""):
        err = error_of(request.with_header("X-Amz-Date", bad), now=request.signed_at)
        assert err.code == "IncompleteSignatureException", bad


def test_credential_scope_must_name_the_service() -> None:
    err = error_of(signed(service="s3"))
    assert (err.code, err.status) == ("InvalidSignatureException", 400)
    assert str(err) == "Credential should be scoped to correct service: 'sagemaker'. "
    # and the service is a parameter
    request = signed(service="s3")
    assert request.verify(service="s3").access_key_id == AKID


def test_credential_scope_date_must_match_x_amz_date() -> None:
    request = signed()
    key, _, region, service, term = auth_params(request)["Credential"].split("/")
    day_before = (request.signed_at - timedelta(days=1)).strftime("%Y%m%d")
    err = error_of(with_auth(request, Credential=f"{key}/{day_before}/{region}/{service}/{term}"))
    assert err.code == "InvalidSignatureException"
    assert str(err).startswith("Date in Credential scope does not match")


def test_credential_scope_terminator_must_be_aws4_request() -> None:
    request = signed()
    key, date, region, service, _ = auth_params(request)["Credential"].split("/")
    err = error_of(with_auth(request, Credential=f"{key}/{date}/{region}/{service}/aws4_other"))
    assert err.code == "InvalidSignatureException"
    assert "terminator" in str(err)


def test_content_sha256_header_not_matching_the_body_is_invalid_signature() -> None:
    body = b'{"MaxResults": 7}'
    wrong = hashlib.sha256(b"something else").hexdigest()
    err = error_of(signed(body, extra_headers={"X-Amz-Content-SHA256": wrong}))
    assert err.code == "InvalidSignatureException"
    assert "x-amz-content-sha256" in str(err)


def test_unsigned_payload_is_refused() -> None:
    # botocore sends UNSIGNED-PAYLOAD over https when payload signing is disabled
    request = signed(url="https://127.0.0.1:8443/", context={"payload_signing_enabled": False})
    assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    err = error_of(request)
    assert err.code == "InvalidSignatureException"
    assert "UNSIGNED-PAYLOAD" in str(err)


# ---- a real boto3 client -------------------------------------------------------------------


@pytest.fixture
def capturing_server() -> Iterator[tuple[str, list[Captured]]]:
    """A loopback HTTP server that records each request and answers 400 with an AWS JSON error."""
    captured: list[Captured] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            parts = urlsplit(self.path)
            headers = dict(self.headers.items())
            captured.append(Captured(self.command, parts.path, parts.query, headers, body))
            out = json.dumps(
                {"__type": "com.amazon.coral.service#ValidationException", "message": "captured"}
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", captured
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEXAMPLETOKEN"])
def test_request_from_a_real_boto3_sagemaker_client(
    capturing_server: tuple[str, list[Captured]], token: str | None
) -> None:
    endpoint, captured = capturing_server
    client = boto3.client(
        "sagemaker",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=AKID,
        aws_secret_access_key=SECRET,
        aws_session_token=token,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )
    with pytest.raises(ClientError) as info:
        client.list_experiments(MaxResults=5)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert len(captured) == 1
    request = captured[0]
    assert (request.method, request.path) == ("POST", "/")
    assert request.headers["X-Amz-Target"] == TARGET
    assert request.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert json.loads(request.body) == {"MaxResults": 5}
    assert request.headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AKID}/")

    assert request.verify(now=datetime.now(UTC)) == Credential(AKID, SECRET, ACCOUNT)
    assert request.verify(now=None).account_id == ACCOUNT
    tampered = replace(request, body=b'{"MaxResults": 50}')
    assert error_of(tampered).code == "InvalidSignatureException"


def test_boto3_reads_auth_error_bodies_as_aws_codes() -> None:
    """The error body AuthError gives is what botocore turns into Error.Code / Message."""
    err = AuthError(
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )
    parser = create_parser("json")
    body = json.dumps(err.response_body()).encode()
    response = {"status_code": err.status, "headers": {}, "body": body}
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    shape = client.meta.service_model.operation_model("ListExperiments").output_shape
    parsed = parser.parse(response, shape)
    assert parsed["Error"] == {"Code": err.code, "Message": str(err)}


# ---- the credentials file ------------------------------------------------------------------


def write(tmp_path: Path, content: str) -> Path:
    path = tmp_path / "credentials.json"
    path.write_text(content, encoding="utf-8")
    return path


def test_credentials_file_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        json.dumps(
            {
                AKID: {"secret_access_key": SECRET, "account_id": ACCOUNT},
                "AKIDSECOND": {"secret_access_key": "s2", "account_id": "000000000001"},
            }
        ),
    )
    loaded = Credentials.load(path)
    assert loaded.get(AKID) == Credential(AKID, SECRET, ACCOUNT)
    assert loaded.get("AKIDSECOND") == Credential("AKIDSECOND", "s2", "000000000001")
    assert loaded.get("nope") is None
    assert len(loaded) == 2
    assert SECRET not in repr(loaded)
    assert SECRET not in repr(loaded.get(AKID))
    request = signed()
    assert (
        authenticate(
            request.method,
            request.path,
            request.query,
            request.headers,
            request.body,
            loaded,
            now=request.signed_at,
        ).credential.account_id
        == ACCOUNT
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected a JSON object"),
        ("{}", "defines no credentials"),
        ('{"AKID1": "secret"}', "entry 'AKID1': expected an object"),
        (
            '{"AKID1": {"account_id": "123456789012"}}',
            "entry 'AKID1': missing field(s) 'secret_access_key'",
        ),
        (
            '{"AKID1": {"secret_access_key": "s", "account_id": "12345"}}',
            "entry 'AKID1': 'account_id' must be a string of 12 digits",
        ),
        (
            '{"AKID1": {"secret_access_key": "s", "account_id": 123456789012}}',
            "entry 'AKID1': 'account_id' must be a string of 12 digits",
        ),
        (
            '{"AKID1": {"secret_access_key": "", "account_id": "123456789012"}}',
            "entry 'AKID1': 'secret_access_key' must be a non-empty string",
        ),
        (
            '{"AKID1": {"secret_access_key": "s", "account_id": "123456789012", "region": "x"}}',
            "entry 'AKID1': unknown field(s) 'region'",
        ),
        (
            '{"AKID/1": {"secret_access_key": "s", "account_id": "123456789012"}}',
            "entry 'AKID/1': an access key id is",
        ),
    ],
)
def test_credentials_file_errors_name_the_file_and_entry(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ConfigurationError) as info:
        Credentials.load(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_credentials_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigurationError, match="cannot read it") as info:
        Credentials.load(path)
    assert str(path) in str(info.value)


def test_duplicate_access_key_ids_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="defined twice"):
        Credentials([Credential(AKID, "a", ACCOUNT), Credential(AKID, "b", ACCOUNT)])
