"""Ostinato: a gRPC serving mesh for agentic LLM programs.

    import ostinato
    with ostinato.Client("127.0.0.1:50051") as client, client.program() as program:
        print(program.call(messages=[{"role": "user", "content": "Hello"}]).text)
"""

from ostinato.aio_client import AsyncClient, AsyncProgram
from ostinato.client import Client, Program
from ostinato.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OstinatoError,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from ostinato.sdk_types import CallOutput, ProgramSummary, ToolCall, Usage

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "AsyncProgram",
    "CallOutput",
    "Cancelled",
    "Client",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "OstinatoError",
    "Program",
    "ProgramSummary",
    "RateLimited",
    "ToolCall",
    "Unauthenticated",
    "Unavailable",
    "Usage",
]
__version__ = "0.1.0"
