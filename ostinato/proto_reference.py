"""The gRPC API reference (docs/reference/grpc.md), generated from the comments in
protos/ostinato/v1/*.proto: services and their methods, then messages with their fields
and enums with their values, each with the comment written above it (or after it).

`make docs` (`python -m ostinato.reference_docs`) rewrites the file; tests/test_proto_reference.py fails
when it is stale.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from google.protobuf import descriptor_pb2

from ostinato.protogen import PROTO_ROOT, ROOT, proto_files

OUT = ROOT / "docs" / "reference" / "grpc.md"
_FDP = descriptor_pb2.FieldDescriptorProto
_TYPES = {v: n.removeprefix("TYPE_").lower() for n, v in _FDP.Type.items()}

# SourceCodeInfo paths: FileDescriptorProto field numbers of each kind of element
_MESSAGE, _ENUM, _SERVICE = 4, 5, 6
_FIELD, _NESTED, _NESTED_ENUM = 2, 3, 4
_METHOD, _VALUE = 2, 2


def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        args = ["protoc", f"-I{PROTO_ROOT}", f"-I{resources.files('grpc_tools') / '_proto'}",
                "--include_source_info", f"--descriptor_set_out={out}",
                *[str(p.relative_to(PROTO_ROOT)) for p in proto_files()]]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed: " + " ".join(args))
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def _comments(f: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    out = {}
    for loc in f.source_code_info.location:
        text = " ".join((loc.leading_comments + " " + loc.trailing_comments).split())
        if text:
            out[tuple(loc.path)] = text
    return out


def _type(field: descriptor_pb2.FieldDescriptorProto) -> str:
    name = field.type_name.lstrip(".") if field.type_name else _TYPES[field.type]
    if field.label == _FDP.LABEL_REPEATED:
        return f"repeated {name}"
    return f"optional {name}" if field.proto3_optional else name


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _message(out: list[str], msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...],
             prefix: str, docs: dict[tuple[int, ...], str]) -> None:
    name = f"{prefix}{msg.name}"
    out += [f"### `{name}`", ""]
    if path in docs:
        out += [docs[path], ""]
    if msg.field:
        out += ["| # | field | type | meaning |", "|---|---|---|---|"]
        for i, field in enumerate(msg.field):
            out.append(f"| {field.number} | `{field.name}` | `{_type(field)}` | "
                       f"{_cell(docs.get((*path, _FIELD, i), ''))} |")
        out.append("")
    for i, nested in enumerate(msg.nested_type):
        if not nested.options.map_entry:
            _message(out, nested, (*path, _NESTED, i), f"{name}.", docs)
    for i, enum in enumerate(msg.enum_type):
        _enum(out, enum, (*path, _NESTED_ENUM, i), f"{name}.", docs)


def _enum(out: list[str], enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...],
          prefix: str, docs: dict[tuple[int, ...], str]) -> None:
    out += [f"### enum `{prefix}{enum.name}`", ""]
    if path in docs:
        out += [docs[path], ""]
    out += ["| value | number | meaning |", "|---|---|---|"]
    for i, value in enumerate(enum.value):
        out.append(f"| `{value.name}` | {value.number} | {_cell(docs.get((*path, _VALUE, i), ''))} |")
    out.append("")


def render(files: Sequence[descriptor_pb2.FileDescriptorProto] | None = None) -> str:
    files = files if files is not None else descriptor_set().file
    out = ["# gRPC API reference", "",
           "Generated from the comments in `protos/ostinato/v1/*.proto` by "
           "`make docs` (`python -m ostinato.reference_docs`); do not edit by hand. Package `ostinato.v1`. "
           "Clients call the Gateway; Planner and Worker are the mesh's internal services. "
           "Errors are gRPC status codes with a message (see each method).", ""]
    for f in files:
        docs = _comments(f)
        out += [f"## `{f.name}`", ""]
        for si, service in enumerate(f.service):
            out += [f"### service `{service.name}`", ""]
            if (_SERVICE, si) in docs:
                out += [docs[(_SERVICE, si)], ""]
            out += ["| method | request | response | meaning |", "|---|---|---|---|"]
            for mi, method in enumerate(service.method):
                stream = "stream " if method.server_streaming else ""
                out.append(f"| `{method.name}` | `{method.input_type.lstrip('.')}` | "
                           f"`{stream}{method.output_type.lstrip('.')}` | "
                           f"{_cell(docs.get((_SERVICE, si, _METHOD, mi), ''))} |")
            out.append("")
        for i, msg in enumerate(f.message_type):
            _message(out, msg, (_MESSAGE, i), "", docs)
        for i, enum in enumerate(f.enum_type):
            _enum(out, enum, (_ENUM, i), "", docs)
    return "\n".join(out).rstrip() + "\n"
