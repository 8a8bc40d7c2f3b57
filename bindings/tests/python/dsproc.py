"""A real grove-ds for the binding tests: started on a free port with a
fresh data directory, with a dev TLS certificate whose fingerprint the
clients pin (or plain HTTP on loopback), stopped and restarted on demand."""

import os
import re
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ds:
    def __init__(self, tls=True):
        self.bin = os.environ["GROVE_DS_BIN"]
        self.tls = tls
        self.data = tempfile.mkdtemp(prefix="grove-ds-")
        self.port = free_port()
        self.proc = None
        self.fingerprint = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self):
        args = [self.bin, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data,
                "--rate-limit-per-sec", "0"]
        args.append("--dev-tls" if self.tls else "--insecure-http")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        if self.tls:
            # grove-ds prints the certificate's fingerprint before it listens.
            for line in self.proc.stdout:
                m = re.search(r"fingerprint: ([0-9a-f]{64})", line)
                if m:
                    self.fingerprint = m.group(1)
                    break
            if self.fingerprint is None:
                raise RuntimeError("grove-ds printed no certificate fingerprint")
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"grove-ds exited with {self.proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("grove-ds did not start listening within 30 s")

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
