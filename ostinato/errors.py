"""The SDK's exceptions: one per gRPC status a caller handles differently, all OstinatoError.

    try:
        program.call(messages=...)
    except ostinato.RateLimited as exc:
        time.sleep(exc.retry_after_s or 1.0)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc


class OstinatoError(Exception):
    """A call failed; `code` is the gRPC status the mesh answered with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class InvalidArgument(OstinatoError):
    """The request is malformed (INVALID_ARGUMENT): fix it, do not retry."""


class Unauthenticated(OstinatoError):
    """No API key, or one the mesh does not know (UNAUTHENTICATED)."""


class NotFound(OstinatoError):
    """No such program (or it has ended) or model for this tenant (NOT_FOUND)."""


class InvalidDag(InvalidArgument):
    """A declared DAG the gateway would refuse (a cycle, an unknown parent, a duplicate id, a
    template naming a node it does not depend on): raised by `ostinato.dag` before sending."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, message)


class AlreadyExists(OstinatoError):
    """A call id used twice in a program, or a DAG run given the id of a program open
    already (ALREADY_EXISTS)."""


class FailedPrecondition(OstinatoError):
    """The program ended while the call waited to run (FAILED_PRECONDITION)."""


class RateLimited(OstinatoError):
    """Over a quota or the mesh is shedding load (RESOURCE_EXHAUSTED); `retry_after_s`: when
    a retry would fit, when the mesh said so."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after_s = retry_after_s


class Unavailable(OstinatoError):
    """The mesh (or the worker running the call) could not be reached (UNAVAILABLE)."""


class DeadlineExceeded(OstinatoError):
    """The call did not finish within its deadline (DEADLINE_EXCEEDED)."""


class Cancelled(OstinatoError):
    """The call was cancelled (CANCELLED)."""


class ClientClosed(Cancelled):
    """The Client was closed before this use of it, or of one of its programs (CANCELLED)."""


_BY_CODE: dict[grpc.StatusCode, type[OstinatoError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def error_for(code: grpc.StatusCode, message: str,
              trailers: Iterable[tuple[str, str | bytes]] = ()) -> OstinatoError:
    """The exception for a status; RateLimited reads the gateway's `retry-after-ms` trailer."""
    cls = _BY_CODE.get(code, OstinatoError)
    if cls is RateLimited:
        retry_ms = next((v for k, v in trailers if k == "retry-after-ms" and isinstance(v, str)), None)
        return RateLimited(code, message, int(retry_ms) / 1000 if retry_ms and retry_ms.isdigit() else None)
    return cls(code, message)


def from_rpc_error(exc: grpc.RpcError) -> OstinatoError:
    """The exception for a failed RPC (a grpc.RpcError, or grpc.aio.AioRpcError)."""
    code: Any = getattr(exc, "code", lambda: grpc.StatusCode.UNKNOWN)()
    details: Any = getattr(exc, "details", lambda: str(exc))()
    trailers: Any = getattr(exc, "trailing_metadata", lambda: ())()
    return error_for(code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN,
                     details or "", tuple(trailers or ()))
