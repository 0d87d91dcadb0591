"""The store's cost per upload and per delete with 10 000 stored conversations.

Fills a store with CONVERSATIONS conversations (over OWNERS owners), each showing one of MEDIA small stored
images, then times, over ROUNDS rounds each:
- upload: what the chat does for a message with a new image (`Store.make_room` where the store has it, the
  media store's validation and copy, then saving a new conversation that refers to it), with the data dir
  under its bound and with it over its bound while nothing may be evicted (every image is in use);
- delete: deleting one conversation (and the media only it used).
It prints the median and the 95th percentile of each, in milliseconds. The script runs unchanged on a store
without reference counts (the code before them, which has no `make_room`), so the two can be compared:
  .venv/bin/python benchmarks/bench_store.py
  git archive main | tar -x -C /tmp/main && PYTHONPATH=/tmp/main .venv/bin/python benchmarks/bench_store.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

if not any(Path(p, "ixc_app").is_dir() for p in sys.path[1:] if p):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ixc_app.chat import add_user_message, ingest_upload, new_conversation
from ixc_app.config import Limits
from ixc_app.media import MediaStore
from ixc_app.store import Store

LIMITS = Limits()


def image(path: Path, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def owner(i: int) -> str:
    return f"owner-{i:04d}-aaaaaaaaaaaa"


def timed(rounds: int, step: Callable[[int], None]) -> tuple[float, float]:
    times = []
    for i in range(rounds):
        start = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--media", type=int, default=1_000)
    parser.add_argument("--owners", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    import ixc_app.store

    print(f"store code: {ixc_app.store.__file__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "in").mkdir()
        store = Store(root / "store", MediaStore(root / "media"), max_bytes=1 << 40, grace_s=0.0)
        start = time.perf_counter()
        items = [
            ingest_upload(store.media, image(root / "in" / f"{i}.png", i), LIMITS) for i in range(args.media)
        ]
        convs = []
        for i in range(args.conversations):
            conv = add_user_message(
                new_conversation(owner(i % args.owners)), f"question {i}", (items[i % len(items)],)
            )
            store.put(conv)
            convs.append(conv)
        print(
            f"filled: {args.conversations} conversations, {args.owners} owners, {args.media} images "
            f"in {time.perf_counter() - start:.1f} s"
        )
        make_room = getattr(store, "make_room", None)
        seed = [10_000_000]

        def upload(i: int) -> None:
            seed[0] += 1
            path = image(root / "in" / f"new-{seed[0]}.png", seed[0])
            if make_room is not None:
                make_room(path.stat().st_size)
            item = ingest_upload(store.media, path, LIMITS)
            store.put(add_user_message(new_conversation(owner(i % args.owners)), "new", (item,)))

        under = timed(args.rounds, upload)
        store.max_bytes = 1
        store.grace_s = 1e12  # over the bound, and nothing may go: every check runs in full
        over = timed(args.rounds, lambda i: upload(i) if make_room is None else _refused(upload, i))
        store.max_bytes, store.grace_s = 1 << 40, 0.0
        delete = timed(args.rounds, lambda i: store.delete(convs[i].owner, convs[i].id))
        store.close()
    print(f"upload, under the bound:        median {under[0]:8.2f} ms   p95 {under[1]:8.2f} ms")
    print(f"upload, over it, nothing to go: median {over[0]:8.2f} ms   p95 {over[1]:8.2f} ms")
    print(f"delete one conversation:        median {delete[0]:8.2f} ms   p95 {delete[1]:8.2f} ms")


def _refused(upload: Callable[[int], None], i: int) -> None:
    """With the bound enforced before the copy, the full store refuses the upload: time the refusal."""
    from ixc_app.media import StorageFull

    try:
        upload(i)
    except StorageFull:
        return


if __name__ == "__main__":
    main()
