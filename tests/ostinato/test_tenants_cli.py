"""`ostinato tenants` (ostinato/tenants_cli.py) against a real Redis and a real Redis
Cluster (tests/conftest.py's): where it finds its Redis (flags over the mesh config and
OSTINATO_REDIS__*), one-line errors with their exit status, and messages that say what
happened."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from cache import keys
from cache.redis_client import connect_sync
from ostinato import cli
from tests.ports import closed_port


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OSTINATO_ variable of the caller's decides where these tests' Redis is."""
    for name in os.environ:
        if name.startswith("OSTINATO_"):
            monkeypatch.delenv(name)


def tenants(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = cli.main(["tenants", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def name() -> str:
    return "cli-" + uuid.uuid4().hex[:8]


def test_cluster_flag_on_a_plain_redis_is_one_line_not_a_traceback(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The cluster client's RedisClusterException is no RedisError: it went out raw, ~40
    lines of traceback."""
    rc, out, err = tenants(capsys, "--redis-url", redis_url, "--cluster", "list")
    assert (rc, out) == (1, "")
    assert err.startswith("ostinato tenants: redis error: ") and err.count("\n") == 1
    assert "Cluster mode is not enabled" in err


def test_a_url_the_cluster_client_refuses_is_refused_input(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    other_db = redis_url.rsplit("/", 1)[0] + "/1"
    rc, _, err = tenants(capsys, "--redis-url", other_db, "--cluster", "list")
    assert rc == 2
    assert err == (f"ostinato tenants: redis URL {other_db!r}: Argument 'db' must be 0 or None "
                   "in cluster mode\n")


def test_nothing_listening_is_a_redis_error(capsys: pytest.CaptureFixture[str]) -> None:
    for flags in ([], ["--cluster"]):
        rc, _, err = tenants(capsys, "--redis-url", f"redis://127.0.0.1:{closed_port()}/0",
                             *flags, "list")
        assert rc == 1 and err.startswith("ostinato tenants: redis error: ")
        assert err.count("\n") == 1


def test_the_url_comes_from_the_environment_and_the_config_file(
        redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = name()
    monkeypatch.setenv("OSTINATO_REDIS__URL", redis_url)
    rc, out, err = tenants(capsys, "create", tenant)
    assert (rc, err) == (0, "") and f"tenant {tenant} created" in out
    monkeypatch.delenv("OSTINATO_REDIS__URL")
    config = tmp_path / "mesh.yaml"
    config.write_text(f"redis:\n  url: {redis_url}\n")
    rc, out, _ = tenants(capsys, "--config", str(config), "list")
    assert rc == 0 and f"tenant {tenant}: 1 key(s)" in out
    # the flag wins over the environment (which names nothing listening here)
    monkeypatch.setenv("OSTINATO_REDIS__URL", f"redis://127.0.0.1:{closed_port()}/0")
    rc, out, _ = tenants(capsys, "--redis-url", redis_url, "revoke", tenant)
    assert (rc, out) == (0, f"tenant {tenant} revoked (1 key(s) removed)\n")


def test_cluster_mode_from_the_environment(redis_cluster_url: str,
                                           capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSTINATO_REDIS__URL", redis_cluster_url)
    monkeypatch.setenv("OSTINATO_REDIS__CLUSTER", "true")
    tenant = name()
    assert tenants(capsys, "create", tenant)[0] == 0
    rc, out, _ = tenants(capsys, "list")
    assert rc == 0 and f"tenant {tenant}: 1 key(s)" in out
    assert tenants(capsys, "revoke", tenant)[0] == 0


@pytest.mark.parametrize(("environ", "argv", "err"), [
    ({}, [], "ostinato tenants: no Redis named: pass --redis-url, or set OSTINATO_REDIS__URL "
             "(or redis.url in the --config file)\n"),
    ({}, ["--redis-url", "http://x"], "ostinato tenants: --redis-url 'http://x': Redis URL must "
     "specify one of the following schemes (redis://, rediss://, unix://)\n"),
    ({"OSTINATO_REDIS__URL": "http://x"}, [], "ostinato tenants: configuration error: redis.url: "
     "Redis URL must specify one of the following schemes (redis://, rediss://, unix://) "
     "(got 'http://x') (from OSTINATO_REDIS__URL)\n"),
    ({}, ["--cluster"], "ostinato tenants: configuration error: redis.cluster: needs redis.url, "
     "a node of the cluster (the embedded Redis is one server)\n"),
])
def test_no_redis_or_a_bad_one_is_refused(environ: dict[str, str], argv: list[str], err: str,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert tenants(capsys, *argv, "list") == (2, "", err)


def test_help_names_the_environment_variables(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["tenants", "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "OSTINATO_REDIS__URL" in out and "OSTINATO_REDIS__CLUSTER" in out


def test_adding_a_key_the_tenant_already_has_says_so(redis_url: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    tenant, key = name(), "sk-" + uuid.uuid4().hex
    at = ["--redis-url", redis_url]
    assert tenants(capsys, *at, "create", tenant)[0] == 0
    assert tenants(capsys, *at, "add-key", tenant, key) == (0, f"key added for tenant {tenant}\n", "")
    client = connect_sync(redis_url)
    try:
        version = client.get(keys.tenancy_version())
        again = tenants(capsys, *at, "add-key", tenant, key)
        assert again == (0, f"tenant {tenant} already has this key (nothing changed)\n", "")
        assert client.get(keys.tenancy_version()) == version  # no change for gateways to reload
    finally:
        client.close()
    rc, out, _ = tenants(capsys, *at, "list")
    assert rc == 0 and f"tenant {tenant}: 2 key(s)" in out
    assert tenants(capsys, *at, "revoke", tenant)[1] == f"tenant {tenant} revoked (2 key(s) removed)\n"


@pytest.mark.parametrize("system", ["", "  \n"])
def test_an_empty_shared_system_prompt_is_refused(system: str, redis_url: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    shared = name()
    rc, out, err = tenants(capsys, "--redis-url", redis_url, "share", shared, "--system", system)
    assert (rc, out) == (2, "")
    assert err == "ostinato tenants: --system: the system prompt is empty (a shared prefix needs text)\n"
    assert f"shared {shared}" not in tenants(capsys, "--redis-url", redis_url, "list")[1]
    rc, out, _ = tenants(capsys, "--redis-url", redis_url, "share", shared, "--system", "Be brief.")
    assert rc == 0 and out.startswith(f"shared prefix {shared!r} declared")
    assert tenants(capsys, "--redis-url", redis_url, "unshare", shared)[0] == 0


def test_weight_default_takes_a_records_weight_out(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """A record an older version wrote names weight 1 (a configured key's seed, `create`
    without --weight): `update --weight default` takes it out, so that the tenant gets
    planner.tenant_weights' (diff review 2026-12-07: no command could)."""
    tenant = name()
    client = connect_sync(redis_url)
    try:
        client.hset(keys.tenancy_tenants(), tenant, '{"weight": 1.0, "rpm": 7}')
        rc, out, _ = tenants(capsys, "--redis-url", redis_url, "update", tenant,
                             "--weight", "default")
        assert rc == 0
        assert out == (f"tenant {tenant}: weight unset (from planner.tenant_weights, else 1), "
                       "rpm 7, tpm unlimited, max programs gateway.max_programs_per_tenant\n")
        assert b"weight" not in client.hget(keys.tenancy_tenants(), tenant)
        with pytest.raises(SystemExit) as refused:
            tenants(capsys, "--redis-url", redis_url, "update", tenant, "--weight", "heavy")
        assert refused.value.code == 2
        assert "a number or 'default', got 'heavy'" in capsys.readouterr().err
    finally:
        client.hdel(keys.tenancy_tenants(), tenant)
        client.close()


def test_a_tenant_can_be_given_no_program_limit(
        redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--max-programs unlimited: no limit whatever the gateways' max_programs_per_tenant (a
    record could only name a number, or 0 for that default); 0 brings the default back."""
    tenant = name()
    client = connect_sync(redis_url)
    try:
        assert tenants(capsys, "--redis-url", redis_url, "create", tenant,
                       "--max-programs", "unlimited")[0] == 0
        assert '"max_programs": -1' in client.hget(keys.tenancy_tenants(), tenant).decode()
        for given, said in (("0", "gateway.max_programs_per_tenant"), ("unlimited", "unlimited")):
            rc, out, _ = tenants(capsys, "--redis-url", redis_url, "update", tenant,
                                 "--max-programs", given)
            assert rc == 0 and out.endswith(f"max programs {said}\n")
        rc, _, err = tenants(capsys, "--redis-url", redis_url, "update", tenant,
                             "--max-programs", "-2")
        assert rc == 2 and "max_programs >= 0 (0: the gateways' default) or -1" in err
        with pytest.raises(SystemExit) as refused:
            tenants(capsys, "--redis-url", redis_url, "update", tenant, "--max-programs", "lots")
        assert refused.value.code == 2
        assert "a number or 'unlimited', got 'lots'" in capsys.readouterr().err
    finally:
        tenants(capsys, "--redis-url", redis_url, "revoke", tenant)
        client.close()
