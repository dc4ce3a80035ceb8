"""Signed single requests for the many small objects of a deduplicated archive.

botocore's client spends ~2.8 ms of CPU per call (parameter validation, endpoint rules, event
hooks, XML parsing), under the GIL, which is most of the cost of storing or fetching a thousand
500 KiB contents. A content PUT or GET needs none of that machinery:
- the objects' URL prefix is fixed once, by botocore itself: a presigned URL of a placeholder
  key gives the addressing style, endpoint and signing region the client would use;
- each request is signed by botocore's own SigV4 signer and sent on the client's own
  connection pool (same TLS verification, proxies and timeouts);
- a PUT's payload is signed with the content's sha256 (x-amz-content-sha256, which we already
  know, so the body is not hashed again), and x-amz-checksum-sha256 asks the server to store the
  same checksum and confirm it: a body that differs is refused.

Anything this path does not expect (a redirect to another region, a header the server does not
take, any refusal but a missing object or mismatching bytes) raises FallBack: the backend turns
the direct path off and makes the call with the client, which reports a real error itself.
Error bodies come from an untrusted server: only a short error code is taken from them, by a
bounded pattern, never parsed as XML.
"""

import base64
import hashlib
import re
import time
from datetime import datetime
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import BotoCoreError, ClientError, ConnectionClosedError, HTTPClientError

PLACEHOLDER_KEY = "backup-manager-direct-placeholder"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Answers that mean "ask elsewhere or otherwise": the client knows how (region redirects).
FALLBACK_CODES = {
	"PermanentRedirect",
	"TemporaryRedirect",
	"AuthorizationHeaderMalformed",
	"IllegalLocationConstraintException",
	"NotImplemented",
	"InvalidArgument",
	"InvalidRequest",
}
FALLBACK_STATUSES = {301, 302, 307, 308}
# The only 4xx answers the direct path reports itself: a missing object, bytes the server refused
# for not matching their checksum, throttling. Any other refusal (a signature or header the
# provider reads otherwise than the client sends it, a policy) is tried again through the client,
# which reports it if it is real: wrong keys fail there too.
DIRECT_4XX_CODES = {"NoSuchKey", "BadDigest", "XAmzContentSHA256Mismatch", "SlowDown", "RequestTimeout"}
ERROR_BODY_LIMIT = 64 * 1024
ERROR_CODE_PATTERN = re.compile(rb"<Code>([A-Za-z0-9.]{1,64})</Code>")
ERROR_MESSAGE_PATTERN = re.compile(rb"<Message>([^<]{0,300})</Message>")
# Request headers for the put_object arguments the backend uses (core.storage.s3._put_arguments).
HEADER_FOR_ARGUMENT = {
	"ChecksumSHA256": "x-amz-checksum-sha256",
	"StorageClass": "x-amz-storage-class",
	"ServerSideEncryption": "x-amz-server-side-encryption",
	"SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
	"ObjectLockMode": "x-amz-object-lock-mode",
}
RETRY_BASE_SECONDS = 0.1


class FallBack(Exception):
	"""The direct path cannot serve this request: make it with the boto3 client."""


class _KnownPayloadAuth(S3SigV4Auth):
	"""SigV4 for S3 with a payload hash we already have (botocore would hash the body again)."""

	def __init__(self, credentials, region: str, payload_sha256: str):
		super().__init__(credentials, "s3", region)
		self._payload_sha256 = payload_sha256

	def payload(self, request) -> str:
		return self._payload_sha256


class DirectRequests:
	"""PUT and GET of single objects of one bucket, signed like the client signs them."""

	def __init__(self, client, bucket: str, credentials, *, max_attempts: int):
		"""`credentials`: botocore credentials (refreshable ones are frozen per request)."""
		http_session = getattr(getattr(client, "_endpoint", None), "http_session", None)
		if http_session is None or not hasattr(http_session, "send") or credentials is None:
			raise FallBack("this botocore does not expose the client's connection pool")
		url = client.generate_presigned_url(
			"get_object", Params={"Bucket": bucket, "Key": PLACEHOLDER_KEY}, ExpiresIn=60
		)
		parts = urlsplit(url)
		if not parts.path.endswith("/" + PLACEHOLDER_KEY):
			raise FallBack(f"unexpected object URL shape {parts.scheme}://{parts.netloc}")
		# X-Amz-Credential = <key id>/<date>/<region>/s3/aws4_request: the region the client signs for.
		scope = (parse_qs(parts.query).get("X-Amz-Credential") or [""])[0].split("/")
		if len(scope) != 5 or scope[3] != "s3":
			raise FallBack("the client does not sign with SigV4 for s3")
		self.region = scope[2]
		self.prefix = urlunsplit((parts.scheme, parts.netloc, parts.path[: -len(PLACEHOLDER_KEY)], "", ""))
		self._http = http_session
		self._credentials = credentials
		self._max_attempts = max(1, max_attempts)

	def url(self, key: str) -> str:
		return self.prefix + quote(key, safe="/~")

	def put(self, key: str, data: bytes, *, sha256: str, arguments: dict) -> dict[str, str]:
		"""Store `data` (whose sha256 is `sha256`) under `key`; return the response headers."""
		headers = {"Content-Length": str(len(data))}
		for name, value in arguments.items():
			if name == "Metadata":
				headers.update({f"x-amz-meta-{meta}": str(text) for meta, text in value.items()})
			elif name == "ObjectLockRetainUntilDate" and isinstance(value, datetime):
				headers["x-amz-object-lock-retain-until-date"] = value.strftime("%Y-%m-%dT%H:%M:%S.000Z")
				# Object Lock needs a Content-MD5 with the PUT on servers that predate checksums.
				headers["Content-MD5"] = base64.b64encode(hashlib.md5(data).digest()).decode()
			elif name in HEADER_FOR_ARGUMENT:
				headers[HEADER_FOR_ARGUMENT[name]] = str(value)
			else:
				raise FallBack(f"no direct header for {name}")
		response = self._send("PUT", key, "PutObject", sha256, headers, data)
		return {name.lower(): value for name, value in response.headers.items()}

	def get(self, key: str) -> bytes:
		# The client's session reads the whole body before it returns (a cut-short one raises).
		response = self._send("GET", key, "GetObject", EMPTY_SHA256, {}, None)
		data = response.content
		expected = response.headers.get("content-length")
		if expected is not None and expected.isdigit() and int(expected) != len(data):
			raise ConnectionClosedError(endpoint_url=self.url(key))
		return data

	def _send(self, method: str, key: str, operation: str, payload_sha256: str, headers, body):
		for attempt in range(1, self._max_attempts + 1):
			try:
				return self._send_once(method, key, operation, payload_sha256, headers, body)
			except (ClientError, BotoCoreError) as exc:
				if attempt == self._max_attempts or not _retryable(exc):
					raise
			time.sleep(RETRY_BASE_SECONDS * 2 ** (attempt - 1))
		raise AssertionError("unreachable")  # the loop always returns or raises

	def _send_once(self, method: str, key: str, operation: str, payload_sha256: str, headers, body):
		request = AWSRequest(method=method, url=self.url(key), data=body, headers=dict(headers))
		credentials = self._credentials
		if hasattr(credentials, "get_frozen_credentials"):
			credentials = credentials.get_frozen_credentials()
		_KnownPayloadAuth(credentials, self.region, payload_sha256).add_auth(request)
		response = self._http.send(request.prepare())
		status = response.status_code
		if status < 300:
			return response
		text = _error_body(response)
		code = _first(ERROR_CODE_PATTERN, text) or str(status)
		refused = 400 <= status < 500 and status not in (404, 408, 429) and code not in DIRECT_4XX_CODES
		if status in FALLBACK_STATUSES or code in FALLBACK_CODES or refused:
			raise FallBack(f"{operation} answered {status} {code}")
		raise ClientError(
			{
				"Error": {"Code": code, "Message": _first(ERROR_MESSAGE_PATTERN, text)},
				"ResponseMetadata": {
					"HTTPStatusCode": status,
					"HTTPHeaders": {name.lower(): value for name, value in response.headers.items()},
				},
			},
			operation,
		)


def _error_body(response) -> bytes:
	return (response.content or b"")[:ERROR_BODY_LIMIT]


def _first(pattern: re.Pattern, text: bytes) -> str:
	found = pattern.search(text)
	return found.group(1).decode("ascii", "replace") if found else ""


def _retryable(exc: BaseException) -> bool:
	if isinstance(exc, ClientError):
		status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
		return status >= 500 or status in (408, 429)
	return isinstance(exc, HTTPClientError)  # connection refused, closed or timed out
