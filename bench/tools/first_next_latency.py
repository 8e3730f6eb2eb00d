#!/usr/bin/env python3
"""Time from exec to a runtime's first GET /2018-06-01/runtime/invocation/next, per shim mode.

Runs each runtime as a child process on this host (no container, so only the runtime's own
start-up is measured), with AWS_LAMBDA_RUNTIME_API pointing at a listener of this script, and
times from just before the spawn to the arrival of the request line. Reports the median, min
and max of N runs per mode.

  bench/tools/first_next_latency.py [--build build] [--runs 20]

Modes: exec (ephemera-shim running `ephemera-echo --stdio`), native (ephemera-echo linking the
shim library), http (ephemera-shim starting busybox httpd and waiting until it listens).
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import time


def first_next_ms(argv, env):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    full_env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", **env)
    start = time.perf_counter()
    child = subprocess.Popen(argv, env=full_env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    listener.settimeout(10)
    try:
        conn, _ = listener.accept()
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        elapsed = (time.perf_counter() - start) * 1000
        if not data.startswith(b"GET /2018-06-01/runtime/invocation/next"):
            raise RuntimeError(f"unexpected first request: {data[:80]!r}")
        conn.close()
    finally:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        listener.close()
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="CMake build directory (default: build)")
    ap.add_argument("--runs", type=int, default=20, help="runs per mode (default: 20)")
    args = ap.parse_args()
    bin_dir = os.path.join(args.build, "bin")
    shim = os.path.join(bin_dir, "ephemera-shim")
    echo = os.path.join(bin_dir, "ephemera-echo")
    for path in (shim, echo):
        if not os.access(path, os.X_OK):
            sys.exit(f"first_next_latency: {path} is missing: build first (cmake --build {args.build})")
    modes = {
        "exec": ([shim, echo, "--stdio"], {"EPHEMERA_MODE": "exec"}),
        "native": ([echo], {}),
    }
    if os.access("/bin/busybox", os.X_OK):
        modes["http"] = ([shim, "/bin/busybox", "httpd", "-f", "-p", "127.0.0.1:18089", "-h", "/tmp"],
                         {"EPHEMERA_MODE": "http", "EPHEMERA_HTTP_PORT": "18089"})
    print(f"{'mode':8} {'runs':>5} {'median ms':>10} {'min':>8} {'max':>8}")
    for mode, (argv, env) in modes.items():
        samples = [first_next_ms(argv, env) for _ in range(args.runs)]
        print(f"{mode:8} {len(samples):5d} {statistics.median(samples):10.2f} "
              f"{min(samples):8.2f} {max(samples):8.2f}")


if __name__ == "__main__":
    main()
