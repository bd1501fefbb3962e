"""Ostinato: a gRPC serving mesh for agentic LLM programs.

    import ostinato
    with ostinato.Client("127.0.0.1:50051") as client, client.program() as program:
        print(program.call(messages=[{"role": "user", "content": "Hello"}]).text)
"""

from ostinato import dag
from ostinato.aio_client import (
    AsyncCallStream,
    AsyncClient,
    AsyncDagStream,
    AsyncProgram,
    ProgramOpening,
)
from ostinato.client import CallStream, Client, DagStream, Program
from ostinato.errors import (
    AlreadyExists,
    Cancelled,
    ClientClosed,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    InvalidDag,
    NotFound,
    OstinatoError,
    RateLimited,
    Unauthenticated,
    Unavailable,
)
from ostinato.sdk_channel import Tls
from ostinato.sdk_results import (
    CacheStats,
    CallOutput,
    ProgramSummary,
    TokenLogprob,
    ToolCall,
    TopLogprob,
    Usage,
)
from ostinato.sdk_types import CallArgs

__all__ = [
    "AlreadyExists",
    "AsyncCallStream",
    "AsyncClient",
    "AsyncDagStream",
    "AsyncProgram",
    "CacheStats",
    "CallArgs",
    "CallOutput",
    "CallStream",
    "Cancelled",
    "Client",
    "ClientClosed",
    "DagStream",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "InvalidDag",
    "NotFound",
    "OstinatoError",
    "Program",
    "ProgramOpening",
    "ProgramSummary",
    "RateLimited",
    "Tls",
    "TokenLogprob",
    "ToolCall",
    "TopLogprob",
    "Unauthenticated",
    "Unavailable",
    "Usage",
    "dag",
]
__version__ = "0.1.0"
