"""The composer: library search at 10 000 captioned images, and a full composition on the tiny checkpoint.

1. Library search: 10 000 synthetic bilingual captions (Chinese and English words drawn from small
   vocabularies, as the library captioning prompt asks for both) in one user's library. Prints the BM25 index
   build time (the first search of a pool), the resident memory that added, and the median and
   95th-percentile time of
   `Library.search` (the whole call: pool, cached index, BM25 with used images masked, fill-up) over 300
   queries in both languages with 3 used images excluded.
2. Compose: a 6-paragraph, 3-image article on the tiny checkpoint (CPU, hd_num 1) with a library of 12
   generated images: the draft is written (one pass, 64 tokens), then replaced by 6 fixed paragraphs (the
   demo model writes noise with few line breaks) and the image steps run. Prints, per step, engine calls,
   prompt tokens, prompt tokens served from the prefix cache (`Finished.cached_tokens`; 0 where the engine
   has no prefix cache) and time; also the library captioning run, and a second run that calls the engine
   zero times.
Run: .venv/bin/python benchmarks/bench_compose.py
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from ixc_app.compose.article import WritingSettings
from ixc_app.compose.library import tokens
from ixc_app.compose.options import ComposeOptions

REAL_TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "data" / "internlm2" / "tokenizer.model"
LIBRARY_SIZE = 10_000
QUERIES = 300
ZH = [
    "西湖",
    "夕阳",
    "小船",
    "雷峰塔",
    "山顶",
    "绿树",
    "橘猫",
    "沙发",
    "睡觉",
    "夜市",
    "小吃",
    "电动车",
    "充电",
    "城市",
    "街道",
    "雨天",
    "雪景",
    "海边",
    "沙滩",
    "孩子",
    "老人",
    "花园",
    "桥",
    "河流",
    "高楼",
    "灯光",
    "咖啡",
    "书店",
    "火车",
    "飞机",
]
EN = [
    "lake",
    "sunset",
    "boat",
    "pagoda",
    "hill",
    "tree",
    "cat",
    "sofa",
    "sleeping",
    "market",
    "food",
    "scooter",
    "charging",
    "city",
    "street",
    "rain",
    "snow",
    "sea",
    "beach",
    "child",
    "old",
    "garden",
    "bridge",
    "river",
    "tower",
    "light",
    "coffee",
    "books",
    "train",
    "plane",
]
OWNER = "bench-owner-0123456789"


def caption(rng: random.Random) -> str:
    return "".join(rng.sample(ZH, 5)) + "。 " + " ".join(rng.sample(EN, 6)) + "."


def bench_search(folder: Path) -> None:
    from compose_fakes import ScriptedComposeFakeEngine, compose_service

    rng = random.Random(0)
    keys = [f"{i:064x}" for i in range(LIBRARY_SIZE)]
    captions = [caption(rng) for _ in keys]
    service = compose_service(folder, ScriptedComposeFakeEngine())
    store = service.store
    with store._cache.transact():
        for key, text in zip(keys, captions, strict=True):
            store.set_caption(key, text)
    library = service.library
    store.add_to_library(OWNER, keys)
    library.captions(keys)  # the captions in memory, as after the first search of a running app
    tokens("预热")  # loads jieba's dictionary (once per process, about a second)
    process = psutil.Process()
    rss = process.memory_info().rss
    started = time.perf_counter()
    library.search(OWNER, "西湖 夕阳")  # builds and caches the index for this pool
    build_s = time.perf_counter() - started
    grown = process.memory_info().rss - rss
    exclude = keys[:3]
    queries = ["".join(rng.sample(ZH, 3)) if i % 2 else " ".join(rng.sample(EN, 4)) for i in range(QUERIES)]
    times = []
    for query in queries:
        started = time.perf_counter()
        found = library.search(OWNER, query, exclude=exclude)
        times.append(time.perf_counter() - started)
        assert len(found) == 4 and not set(found) & set(exclude)
    times.sort()
    store.set_caption("f" * 64, caption(rng))
    library.add(OWNER, ["f" * 64])
    started = time.perf_counter()
    library.search(OWNER, "西湖 夕阳")
    rebuild_s = time.perf_counter() - started
    print(f"library search over {LIBRARY_SIZE} captioned images (bm25s + jieba):")
    print(
        f"  index build (first search) {build_s:.2f} s, resident memory it added {grown / 2**20:.1f} MiB; "
        f"rebuild after one more image {rebuild_s:.2f} s"
    )
    print(
        f"  Library.search: median {statistics.median(times) * 1000:.2f} ms, "
        f"p95 {times[int(0.95 * len(times))] * 1000:.2f} ms over {QUERIES} queries (zh and en)"
    )
    store.close()


def bench_compose(folder: Path) -> None:
    from app_harness import write_png
    from compose_fakes import compose_service
    from conftest import native_engine

    from ixc_app.engines.native.tiny import write_tiny_checkpoint

    tokenizer = REAL_TOKENIZER if REAL_TOKENIZER.is_file() else None
    checkpoint = write_tiny_checkpoint(folder / "tiny", tokenizer)
    engine = native_engine(checkpoint, is_demo_model=True)
    library = folder / "library"
    library.mkdir()
    for i in range(12):
        write_png(library / f"{i}.png", (20 * i, 140, 220 - 15 * i))
    service = compose_service(folder / "data", engine, folders=(library,))
    steps = engine.steps_run
    started = time.perf_counter()
    made = list(service.index_library(OWNER))[-1].captioned_now
    index_s = time.perf_counter() - started
    again = list(service.index_library(OWNER))[-1].captioned_now
    print(f"\ncompose on the tiny checkpoint ({engine.capabilities.name} engine, prefix cache: "
          f"{engine.capabilities.prefix_cache}):")  # fmt: skip
    print(f"  library of 12 images: {made} captions in {index_s:.1f} s; second run: {again} engine calls")
    settings = WritingSettings(plan_first=False, max_new_tokens=64, seed=3, hd_num_single=1, hd_num_multi=1)
    article = service.start(OWNER, "写一篇关于西湖春天的游记。", [], ComposeOptions(3, None, settings))
    started = time.perf_counter()
    for _ in service.compose(article, single_step=True):
        pass
    paragraphs = [f"第{i + 1}段：西湖的春天，苏堤的柳树和湖上的小船。" for i in range(6)]
    article = service.set_draft(OWNER, article.id, "\n".join(paragraphs))
    done = list(service.compose(article))[-1].article
    total_s = time.perf_counter() - started
    print(
        f"  article: {len(done.paragraphs)} paragraphs, {len(done.image_keys)} images, {total_s:.1f} s in all"
    )
    print(f"  {'step':<11}{'calls':>6}{'prompt tok':>12}{'cached tok':>12}{'generated':>11}{'time s':>9}")
    for s in done.stats:
        print(f"  {s.step:<11}{s.calls:>6}{s.prompt_tokens:>12}{s.cached_tokens:>12}{s.generated_tokens:>11}"
              f"{s.seconds:>9.2f}")  # fmt: skip
    for note in done.notes:
        print(f"  note: {note}")
    print(f"  engine forward passes in all: {engine.steps_run - steps}")
    service.store.close()
    engine.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bench_search(Path(tmp) / "search")
        bench_compose(Path(tmp))


if __name__ == "__main__":
    main()
