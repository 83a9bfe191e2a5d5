"""tests/integration/harness.py

Real components for the integration tests: a throwaway Postgres cluster with the module
preloaded (initdb in a temp dir; run as the `postgres` OS user when we are root), the real
hasura-events-sidecar, and the test receiver (tests/receiver/receiver.py). Every process is
started here and stopped by the test that started it.
"""
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PG_BINDIR = subprocess.check_output(["pg_config", "--bindir"], text=True).strip()
IS_ROOT = os.geteuid() == 0
# The installed sidecar (make install): the build tree may not be readable by the postgres user.
_INSTALLED_SIDECAR = os.path.join(PG_BINDIR, "hasura-events-sidecar")
SIDECAR = os.environ.get("HASURA_EVENTS_SIDECAR") or (
    _INSTALLED_SIDECAR if os.path.exists(_INSTALLED_SIDECAR) else os.path.join(ROOT, "sidecar", "hasura-events-sidecar"))
# With a sidecar built with AddressSanitizer/UndefinedBehaviorSanitizer (HASURA_EVENTS_SIDECAR,
# tests/run-all.sh suite sidecar-asan): a directory the server's OS user can write, where the
# sidecars write their sanitizer reports; run_suite fails the test after which one appears.
# Set in the environment, so that every sidecar a test starts gets them.
SANITIZER_LOGS = os.environ.get("HASURA_EVENTS_SANITIZER_LOGS")
if SANITIZER_LOGS:
    os.environ["ASAN_OPTIONS"] = f"log_path={SANITIZER_LOGS}/asan:detect_leaks=1"
    os.environ["UBSAN_OPTIONS"] = f"log_path={SANITIZER_LOGS}/ubsan:print_stacktrace=1:halt_on_error=1"


def pg_user_ids():
    if IS_ROOT:
        pw = pwd.getpwnam("postgres")
        return pw.pw_uid, pw.pw_gid
    return os.geteuid(), os.getegid()


def as_pg(cmd):
    """The command line that runs cmd as the server's OS user."""
    return (["runuser", "-u", "postgres", "--"] + cmd) if IS_ROOT else cmd


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


class Cluster:
    def __init__(self, extra_conf=(), perturb=True, server_env=None):
        # perturb: MALLOC_PERTURB_ for the server (tests); off for measurements (bench/pair.py)
        self.perturb = perturb
        self.server_env = dict(server_env or {})
        base = os.environ.get("TMPDIR", "/tmp")
        self.dir = tempfile.mkdtemp(prefix="he_it_", dir=base)
        uid, gid = pg_user_ids()
        os.chown(self.dir, uid, gid)
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.socket_prefix = os.path.join(self.dir, "he.sock")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        subprocess.run(as_pg([os.path.join(PG_BINDIR, "initdb"), "-D", self.data, "-A", "trust", "-U", "postgres"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, cwd=self.dir)
        conf = [
            "shared_preload_libraries = 'hasura_events'",
            "listen_addresses = ''",
            f"unix_socket_directories = '{self.dir}'",
            f"port = {self.port}",
            f"hasura_events.socket_path = '{self.socket_prefix}'",
            "hasura_events.retry_check_interval = '200ms'",
            "fsync = off",
            "log_min_messages = log",
        ] + list(extra_conf)
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n".join(conf) + "\n")
        self.start()

    def pg_ctl(self, *args):
        # MALLOC_PERTURB_: glibc fills freed memory, so that a read of freed memory crashes a test
        # instead of passing by luck (the server inherits it from pg_ctl)
        env = dict(self.server_env, **({"MALLOC_PERTURB_": "165"} if self.perturb else {}))
        subprocess.run(as_pg(["env"] + [f"{k}={v}" for k, v in env.items()]
                             + [os.path.join(PG_BINDIR, "pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60"]
                             + list(args)),
                       check=True, stdout=subprocess.DEVNULL, cwd=self.dir)

    def start(self):
        self.pg_ctl("start")

    def stop(self, mode="fast"):
        self.pg_ctl("-m", mode, "stop")

    def restart_immediate(self):
        self.stop("immediate")
        self.start()

    def psql_command(self, db="postgres"):
        """The psql command line of psql(): unaligned, tuples only, tab-separated, stop on error."""
        return ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                "-p", str(self.port), "-U", "postgres", "-d", db]

    def psql(self, sql, db="postgres", check=True):
        """Runs sql; returns the rows as lists of strings (unaligned, tab-separated)."""
        p = subprocess.run(self.psql_command(db), input=sql, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError(f"psql failed: {p.stderr.strip()}\nSQL: {sql}")
        return [line.split("\t") for line in p.stdout.splitlines() if line != ""]

    def scalar(self, sql, db="postgres"):
        rows = self.psql(sql, db)
        return rows[0][0] if rows else None

    def server_log(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def destroy(self):
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Receiver:
    """tests/receiver/receiver.py on 127.0.0.1. answers: it also logs each response it sends
    (answers()). down() and up() stop it and start it again on the same port, same logs."""

    def __init__(self, port=0, answers=False):
        # port 0: a free one; a given port: e.g. one a webhook was refused on until now
        fd, self.log = tempfile.mkstemp(prefix="he_recv_", suffix=".jsonl")
        os.close(fd)
        self.answers_log = None
        if answers:
            fd, self.answers_log = tempfile.mkstemp(prefix="he_answers_", suffix=".jsonl")
            os.close(fd)
        self.port = port
        self.up()
        self.base = f"http://127.0.0.1:{self.port}"

    def up(self):
        cmd = [sys.executable, os.path.join(ROOT, "tests", "receiver", "receiver.py"),
               "--port", str(self.port), "--log", self.log]
        if self.answers_log:
            cmd += ["--answers", self.answers_log]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.port = int(line.strip().rsplit(":", 1)[1])

    def down(self):
        self.proc.terminate()
        self.proc.wait(10)

    def requests(self):
        with open(self.log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def answers(self):
        with open(self.answers_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        self.down()
        os.unlink(self.log)
        if self.answers_log:
            os.unlink(self.answers_log)


class Sidecar:
    def __init__(self, cluster, env=None, args=(), binary=None):
        self.cluster = cluster
        self.logpath = os.path.join(tempfile.gettempdir(), f"he_sidecar_{os.getpid()}_{time.time_ns()}.log")
        self.logfile = open(self.logpath, "w")
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(as_pg([binary or SIDECAR, "--socket", cluster.socket_prefix, "--log-level", "debug"]
                                           + list(args)),
                                     env=full_env, stdout=self.logfile, stderr=subprocess.STDOUT, cwd=cluster.dir)

    def output(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def kill(self, sig=signal.SIGKILL):
        # runuser forwards nothing on SIGKILL: kill the sidecar itself (the child of runuser)
        pids = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        for pid in pids:
            os.kill(int(pid), sig)
        if not pids or sig == signal.SIGKILL:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(signal.SIGKILL)
                self.proc.wait(5)
        self.logfile.close()
        return self.proc.returncode


def sanitizer_reports():
    """The sanitizer reports written since the last call (removed once read); [] without
    HASURA_EVENTS_SANITIZER_LOGS."""
    if not SANITIZER_LOGS:
        return []
    reports = []
    for name in sorted(os.listdir(SANITIZER_LOGS)):
        path = os.path.join(SANITIZER_LOGS, name)
        with open(path, errors="replace") as f:
            reports.append(f"{name}:\n{f.read()}")
        os.unlink(path)
    return reports


def print_log_tails(cluster, sidecar, lines=30):
    """After a failed test: the tails of the server's and the sidecar's logs."""
    print("---- server log (tail) ----")
    print("\n".join(cluster.server_log().splitlines()[-lines:]))
    if sidecar:
        print("---- sidecar log (tail) ----")
        print("\n".join(sidecar.output().splitlines()[-lines:]))


class Skip(Exception):
    """Raised by a test that cannot run here (it says why); counted as skipped, not passed."""


def run_suite(name, tests, argv):
    """Runs the tests named in argv (all when empty); prints PASS/FAIL lines and the closing
    "<name>: N passed, N failed" line that tests/run-all.sh reads. Returns the exit status."""
    selected = [t for t in tests if not argv or t.__name__ in argv]
    passed = failed = skipped = 0
    for t in selected:
        t0 = time.time()
        try:
            t()
            reports = sanitizer_reports()
            if reports:
                raise AssertionError("sanitizer reports of the sidecar:\n" + "\n".join(reports))
            passed += 1
            print(f"PASS {t.__name__} ({time.time() - t0:.1f}s)", flush=True)
        except Skip as why:
            skipped += 1
            print(f"SKIP {t.__name__}: {why}", flush=True)
        except Exception:
            sys.stdout.write("".join(sanitizer_reports()))
            failed += 1
            print(f"FAIL {t.__name__} ({time.time() - t0:.1f}s)", flush=True)
            traceback.print_exc()
    print(f"{name}: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0
