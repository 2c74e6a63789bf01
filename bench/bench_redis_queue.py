"""Redis memory per 1,000 queued ingest jobs (docs/deployment.md, sizes): INFO memory before and after
enqueueing them the way the web app does (upload held, job with its meta). Usage: python bench/redis_queue_memory.py"""

import subprocess
import sys
import tempfile
import time

import redis

from audiofind.app import create_app, services
from audiofind.jobs.queue import enqueue_ingest
from audiofind.serve import _free_port, redis_binary

JOBS = 1000


def main():
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen([redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", folder,
                                   "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            conn = redis.Redis(port=port)
            for _ in range(100):
                try:
                    conn.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            app = create_app({"DATA_DIR": folder, "EMBEDDER": "dsp", "SECRET_KEY": "bench",
                              "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
            before = conn.info("memory")["used_memory"]
            with app.test_request_context():
                for i in range(JOBS):
                    enqueue_ingest(services(app), f"uploads/{i:032x}.flac", f"Some Artist - A Track Title {i}.flac")
            after = conn.info("memory")["used_memory"]
            print(f"{JOBS} queued ingest jobs: {(after - before) / 1e6:.2f} MB of Redis memory "
                  f"({(after - before) / JOBS:.0f} bytes a job; used_memory {before / 1e6:.2f} -> {after / 1e6:.2f} MB)")
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
