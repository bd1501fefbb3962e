"""The committed stubs in ostinato/v1/ must be exactly what `make protos` writes."""

from pathlib import Path

from ostinato import protogen


def test_committed_stubs_match_protos(tmp_path: Path) -> None:
    fresh = protogen.generate(tmp_path)
    assert fresh, "no stubs generated"
    committed_dir = protogen.ROOT / "ostinato" / "v1"
    stale = []
    for path in fresh:
        committed = committed_dir / path.name
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(path.name)
    extra = {p.name for p in committed_dir.glob("*_pb2*.py*")} - {p.name for p in fresh}
    assert not stale and not extra, f"stale stubs {stale}, extra {sorted(extra)}: run `make protos`"
