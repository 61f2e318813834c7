"""The app under load: N concurrent users asking for gallery neighbours, on 127.0.0.1 only.

The script starts ``sslzoo app`` in a subprocess on a free loopback port (or uses ``--url``, which must be a
loopback address), waits for the gallery to be embedded (one warm-up query), then measures

1. the baseline: one user asking ``--requests`` queries one after another (the latency of an idle server), and
2. ``--users`` users at once (threads, each with its own client and connection), each asking ``--requests``
   queries for random gallery images,

and prints requests/s, p50/p95/max latency, the ratio p95 / baseline p50, and the failed responses (an exception,
a warning message instead of neighbours, fewer neighbour images than asked, or an image that is not served whole).
Every answer's images are fetched as a browser would (a kept-alive connection per user), and the latency includes
them, so a file the server rewrote or lost while serving it counts as a failure. The run is bounded:
at most ``--users × --requests`` queries and ``--time-limit`` seconds.

Each user speaks Gradio's HTTP API as a browser's page does (``--client http``: one POST that queues the call,
one server-sent-events GET for its result, on a kept-alive connection), or through ``gradio_client``
(``--client gradio_client``). On a 2-core machine the load generator shares the app's cores: ``gradio_client``
costs ~100 ms of CPU per query in this process, twice what the app spends answering it, so its latencies measure
the clients as much as the app. Both are printed with the CPU each side used.

Latencies depend on what else the machine runs; the app's CPU time per query (read from ``/proc`` for the app it
started) does not, so it is the number to compare between versions (``--app-root`` starts another checkout's app).

    .venv/bin/python benchmarks/bench_app.py                                   # 20 users × 5, dino-vit-fmnist
    .venv/bin/python benchmarks/bench_app.py --users 4 --requests 3 --model models/simclr-fmnist
    .venv/bin/python benchmarks/bench_app.py --url http://127.0.0.1:7860/      # an app already running
    .venv/bin/python benchmarks/bench_app.py --app-root ../main                # before: the main branch's app
    .venv/bin/python benchmarks/bench_app.py --client gradio_client            # users with gradio_client
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    model: str, gallery: str, port: int, log: Path, cpus: str | None = None, root: Path = ROOT
) -> subprocess.Popen:
    """``sslzoo app`` of the checkout ``root`` on 127.0.0.1:port in a subprocess (its output in ``log``)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "app.cli", "app", "--model", model, "--gallery", gallery]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)


class HttpClient:
    """A user of Gradio's HTTP API (``POST /gradio_api/call/NAME``, then its event stream), one connection.

    ``predict`` returns the endpoint's outputs as ``gradio_client`` does (the decoded ``data`` of the
    ``complete`` event) and raises on an ``error`` event. Every call carries the user's session hash, as a
    page's calls do (one session per open page, whose state the app builds once).
    """

    def __init__(self, url: str) -> None:
        import uuid

        import httpx

        self.url = url.rstrip("/")
        self.session = uuid.uuid4().hex
        self.http = httpx.Client(timeout=60)
        self.http.get(f"{self.url}/gradio_api/info").raise_for_status()  # the app is up and serves its API

    def predict(self, *data, api_name: str):
        import json

        call = f"{self.url}/gradio_api/call/{api_name.strip('/')}"
        reply = self.http.post(call, json={"data": list(data), "session_hash": self.session})
        reply.raise_for_status()
        event, payload = None, None
        with self.http.stream("GET", f"{call}/{reply.json()['event_id']}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    payload = line[5:].strip()
                    break
        if event != "complete":
            raise RuntimeError(f"{event or 'no'} event: {(payload or '')[:120]}")
        return json.loads(payload)


def new_client(url: str, kind: str = "http"):
    if kind == "http":
        return HttpClient(url)
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def connect(url: str, deadline: float, proc: subprocess.Popen | None, kind: str):

    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode} before it served; see its log.")
        try:
            return new_client(url, kind)
        except Exception:
            if time.monotonic() > deadline:
                raise SystemExit(f"no app answered on {url} in time.") from None
            time.sleep(1.0)


def _urls(answer) -> list[str]:
    """The image URLs of a neighbour answer: the model input and the neighbour tiles."""
    items = [answer[1], *[item.get("image") for item in answer[2] or []]]
    return [item["url"] for item in items if isinstance(item, dict) and item.get("url")]


def _whole_image(data: bytes) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: a truncated or rewritten file fails here
        return True
    except Exception:
        return False


def one_query(client, http, model: str, gallery: str, index: int, k: int) -> tuple[float, str | None]:
    """Latency of one neighbour query with its images fetched, and why it failed (``None`` when it did not).

    The images are fetched the way a browser does (one kept-alive connection, each decoded in full);
    ``gradio_client``'s own download opens a connection per file and would measure the client, not the app.
    """
    start = time.perf_counter()
    try:
        answer = client.predict(model, gallery, index, k, api_name="/gallery_neighbours")
        message = str(answer[0] or "")
        if message.startswith("⚠️"):
            return time.perf_counter() - start, message[:120]
        if len(answer[2] or []) != k:
            return time.perf_counter() - start, f"{len(answer[2] or [])} neighbour images instead of {k}"
        for url in _urls(answer):
            reply = http.get(url)
            if reply.status_code != 200 or not _whole_image(reply.content):
                return time.perf_counter() - start, f"image {reply.status_code}, {len(reply.content)} bytes"
    except Exception as exc:  # a failed response is what we count
        return time.perf_counter() - start, f"{type(exc).__name__}: {str(exc)[:120]}"
    return time.perf_counter() - start, None


def run_users(url, model, gallery, n_gallery, users, requests, k, deadline, kind):
    """``users`` threads, each with its own client and connection, each asking ``requests`` queries.

    Threads rather than processes: twenty Python processes on two cores would measure their own start-up. The
    clock starts once every user is connected.
    """
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(users + 1)

    def user(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            client, http = new_client(url, kind), httpx.Client(timeout=60)
        except Exception as exc:
            with lock:
                errors.extend([f"connect: {exc}"] * requests)
            barrier.abort()
            return
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=180)
        for _ in range(requests):
            if time.monotonic() > deadline:
                with lock:
                    errors.append("time limit reached before the query was sent")
                continue
            elapsed, error = one_query(client, http, model, gallery, int(rng.integers(n_gallery)), k)
            with lock:
                latencies.append(elapsed)
                if error:
                    errors.append(error)

    threads = [threading.Thread(target=user, args=(seed,), daemon=True) for seed in range(users)]
    for t in threads:
        t.start()
    with contextlib.suppress(threading.BrokenBarrierError):
        barrier.wait(timeout=180)
    start = time.perf_counter()
    for t in threads:
        t.join(max(1.0, deadline - time.monotonic() + 30))
    return latencies, errors, time.perf_counter() - start


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(name: str, latencies: list[float], errors: list[str], wall: float) -> float:
    lat = np.asarray(latencies) if latencies else np.asarray([np.nan])
    p50, p95 = np.percentile(lat, 50), np.percentile(lat, 95)
    print(
        f"{name:<24} {len(latencies):>4} requests in {wall:6.1f} s: {len(latencies) / wall:5.2f} requests/s, "
        f"p50 {p50:6.2f} s, p95 {p95:6.2f} s, max {np.max(lat):6.2f} s, {len(errors)} failed"
    )
    for reason in sorted(set(errors))[:5]:
        print(f"    failure: {reason} (×{errors.count(reason)})")
    return float(p50)


def main() -> None:
    import httpx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/dino-vit-fmnist")
    parser.add_argument("--gallery", default="fashion-mnist")
    parser.add_argument("--gallery-size", type=int, default=10_000, help="queries draw indices below this")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=5, help="queries per user")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument(
        "--client",
        choices=("http", "gradio_client"),
        default="http",
        help="how each user talks to the app: Gradio's HTTP API as a page does, or gradio_client",
    )
    parser.add_argument(
        "--url", default=None, help="an app already running on 127.0.0.1 (else one is started)"
    )
    parser.add_argument(
        "--app-root",
        default=str(ROOT),
        help="checkout whose app to start (e.g. another worktree, for a before/after)",
    )
    parser.add_argument("--app-cpus", default=None, help="pin the app to these cores (taskset), e.g. 0,1")
    parser.add_argument("--startup-limit", type=float, default=300.0, help="seconds to wait for the app")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds for the measured queries")
    args = parser.parse_args()
    if not 1 <= args.users <= 64 or not 1 <= args.requests <= 50:
        raise SystemExit("--users must be 1..64 and --requests 1..50 (the benchmark stays bounded).")

    proc = None
    log = Path(tempfile.mkdtemp(prefix="bench-app-")) / "app.log"
    if args.url:
        host = urlparse(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"--url must be a loopback address (127.0.0.1); got {host!r}.")
        url = args.url
    else:
        port = free_port()
        url = f"http://127.0.0.1:{port}/"
        proc = start_app(args.model, args.gallery, port, log, args.app_cpus, Path(args.app_root).resolve())
    try:
        start = time.monotonic()
        client, http = connect(url, start + args.startup_limit, proc, args.client), httpx.Client(timeout=60)
        elapsed, error = one_query(
            client, http, args.model, args.gallery, 0, args.k
        )  # embeds the gallery if needed
        print(
            f"app ready after {time.monotonic() - start:.1f} s (first query {elapsed:.1f} s{', ' + error if error else ''})"
        )
        deadline = time.monotonic() + args.time_limit
        cpu_start = server_cpu_seconds(proc.pid) if proc is not None else None
        client_start = time.process_time()
        single = [
            one_query(client, http, args.model, args.gallery, i, args.k) for i in range(1, args.requests + 1)
        ]
        wall = sum(s for s, _ in single)
        base = report("1 user (baseline)", [s for s, _ in single], [e for _, e in single if e], wall)
        latencies, errors, wall = run_users(
            url,
            args.model,
            args.gallery,
            args.gallery_size,
            args.users,
            args.requests,
            args.k,
            deadline,
            args.client,
        )
        report(f"{args.users} users × {args.requests}", latencies, errors, wall)
        n = len(latencies) + len(single)
        if proc is not None:
            # Load-independent: what the app itself spent per query (the two phases above, connections included).
            cpu = server_cpu_seconds(proc.pid) - cpu_start
            print(f"app CPU time: {cpu:.1f} s for {n} queries = {1000 * cpu / max(n, 1):.0f} ms per query")
        client = time.process_time() - client_start
        print(
            f"clients' CPU time (this process): {client:.1f} s = {1000 * client / max(n, 1):.0f} ms per query"
        )
        if latencies:
            print(f"p95 under load / baseline p50: {np.percentile(latencies, 95) / base:.1f}x")
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            print(f"app log: {log}")


if __name__ == "__main__":
    main()
