"""Ostinato: a gRPC serving mesh for agentic LLM programs.

    import ostinato
    with ostinato.Client("127.0.0.1:50051") as client, client.program() as program:
        print(program.call(messages=[{"role": "user", "content": "Hello"}]).text)
"""

from ostinato.aio_client import AsyncClient, AsyncProgram
from ostinato.client import Client, Program
from ostinato.sdk_types import CallOutput, OstinatoError, ProgramSummary, ToolCall, Usage

__all__ = [
    "AsyncClient",
    "AsyncProgram",
    "CallOutput",
    "Client",
    "OstinatoError",
    "Program",
    "ProgramSummary",
    "ToolCall",
    "Usage",
]
__version__ = "0.1.0"
