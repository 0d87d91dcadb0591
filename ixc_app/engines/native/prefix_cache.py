"""What the native engine keeps between requests: KV of prompt prefixes by content, vision features by image.

Every prompt position has a content key: its token id, or (image key, crop budget, index) for an image
embedding. KV is kept in blocks of `BLOCK` positions in a trie: a block's node sits under the node of the
block before it and is found by the tuple of its keys, so a prefix is shared by everyone who sends it (a
follow-up turn, a retry, an edit, every composer step over one article, two HTTP clients with the same
history) without any session id. Where a new prompt leaves a cached block part-way (an edit, a retry that ends
inside the block the old answer filled), the longest common start of a child block is reused, so reuse is
exact to the position. Only the last block of a chain may be shorter than `BLOCK`.

The trie of each model generation and inference mode stands alone (the task LoRAs change every position):
`clear` starts a new generation when the model changes, and an insert computed under an older one is refused,
so no entry computed with other weights is ever served. Memory is bounded by a byte limit the caller passes
(what the KV budget leaves beside the running requests); least recently used blocks go first, leaves before
the blocks they extend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from torch import Tensor

from ixc_app.engines.native.attention import KVCache
from ixc_app.ixc.prompt import ImageSegment, Prompt, TextSegment

BLOCK = 64
"""Positions per cached block: small enough that little is recomputed at a boundary, large enough that a
16K-token prompt is a few hundred copies."""


def image_key(segment: ImageSegment) -> tuple[str, int]:
    """What decides an image's embeddings: its content and crop budget (a video strip is used as it is)."""
    return segment.image.key, 0 if segment.image.is_video else segment.hd_num


def position_keys(prompt: Prompt) -> list[Hashable]:
    """One content key per embedding position of the prompt."""
    keys: list[Hashable] = []
    for segment in prompt.segments:
        if isinstance(segment, TextSegment):
            keys.extend(segment.token_ids)
        else:
            image = image_key(segment)
            keys.extend((image, i) for i in range(segment.num_tokens))
    return keys


@dataclass(eq=False)
class Node:
    """One cached block: its keys, its KV [layers, 2, kv_heads, len(keys), head_dim], the blocks after it."""

    keys: tuple[Hashable, ...]
    kv: Tensor | None
    parent: Node | None
    children: dict[tuple[Hashable, ...], Node] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return 0 if self.kv is None else self.kv.numel() * self.kv.element_size()


def common_start(a: tuple[Hashable, ...], b: list[Hashable]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class PrefixCache:
    """KV blocks of prompt prefixes by content (see the module docstring); safe to share between threads."""

    def __init__(self) -> None:
        self.generation = 0
        self._roots: dict[tuple[int, str], Node] = {}
        self._lru: OrderedDict[Node, None] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()
        self.hits = 0
        """Requests that reused at least one cached position."""

    @property
    def nbytes(self) -> int:
        return self._used

    def __len__(self) -> int:
        """Blocks held."""
        return len(self._lru)

    def clear(self) -> None:
        """Forget everything and start a new generation (the model changed)."""
        with self._lock:
            self.generation += 1
            self._roots.clear()
            self._lru.clear()
            self._used = 0

    def cached(self, mode: str, keys: list[Hashable], limit: int) -> int:
        """How many leading positions of `keys` (at most `limit`) `load` would copy now."""
        with self._lock:
            return sum(size for _, size in self._match(mode, keys, limit))

    def load(self, mode: str, keys: list[Hashable], limit: int, cache: KVCache) -> int:
        """Copy the longest cached prefix of `keys` (at most `limit` positions) into the empty `cache`.

        Returns how many positions it holds now.
        """
        loaded = 0
        with self._lock:
            matched = self._match(mode, keys, limit)
            for node, size in matched:
                assert node.kv is not None
                cache.data[:, :, :, loaded : loaded + size] = node.kv[:, :, :, :size]
                loaded += size
            self._touch([node for node, _ in matched])
            self.hits += loaded > 0
        cache.length = loaded
        return loaded

    def _match(self, mode: str, keys: list[Hashable], limit: int) -> list[tuple[Node, int]]:
        """The blocks holding the longest cached prefix of `keys`, each with how many positions it gives."""
        node, matched, length = self._roots.get((self.generation, mode)), [], 0
        while node is not None and length < limit:
            block = keys[length : length + BLOCK]
            child = node.children.get(tuple(block))
            size = len(block)
            if child is None:
                child, size = max(
                    ((c, common_start(c.keys, block)) for c in node.children.values()),
                    key=lambda pair: pair[1],
                    default=(None, 0),
                )
            if child is None or size == 0:
                break
            size = min(size, limit - length)
            matched.append((child, size))
            length += size
            node = child if size == len(child.keys) == BLOCK else None
        return matched

    def insert(
        self, generation: int, mode: str, keys: list[Hashable], cache: KVCache, limit_bytes: int
    ) -> None:
        """Keep the first `len(keys)` positions of `cache` (computed under `generation`), then evict down to
        `limit_bytes`. Positions already cached are not copied again."""
        with self._lock:
            if generation != self.generation:
                return
            node = self._roots.setdefault((generation, mode), Node((), None, None))
            path: list[Node] = []
            for start in range(0, len(keys), BLOCK):
                block = tuple(keys[start : start + BLOCK])
                child = node.children.get(block) or self._covering(node, block)
                if child is None:
                    child = Node(block, cache.data[:, :, :, start : start + len(block)].clone(), node)
                    self._drop_covered_by(node, block)
                    node.children[block] = child
                    self._used += child.nbytes
                path.append(child)
                node = child
            self._touch(path)
            self._evict(limit_bytes)

    def evict(self, limit_bytes: int) -> None:
        with self._lock:
            self._evict(limit_bytes)

    def _covering(self, node: Node, block: tuple[Hashable, ...]) -> Node | None:
        """A longer block under `node` that starts with `block` (and so holds its positions), if any."""
        return next(
            (c for c in node.children.values() if len(c.keys) > len(block) and c.keys[: len(block)] == block),
            None,
        )

    def _drop_covered_by(self, node: Node, block: tuple[Hashable, ...]) -> None:
        """Remove the shorter (leaf) blocks under `node` that `block` starts with: it holds all they held."""
        for keys, child in list(node.children.items()):
            if len(keys) < len(block) and block[: len(keys)] == keys and not child.children:
                self._remove(child)

    def _touch(self, path: list[Node]) -> None:
        """Mark `path` (root side first) as just used; a node always stays more recent than its children, so
        the least recently used node is a leaf."""
        for node in reversed(path):
            self._lru[node] = None
            self._lru.move_to_end(node)

    def _evict(self, limit_bytes: int) -> None:
        while self._lru and self._used > limit_bytes:
            self._remove(next(iter(self._lru)))

    def _remove(self, node: Node) -> None:
        for child in list(node.children.values()):
            self._remove(child)
        assert node.parent is not None
        del node.parent.children[node.keys]
        self._lru.pop(node, None)
        self._used -= node.nbytes


class FeatureCache:
    """Vision features by (image content key, crop budget), least recently used dropped beyond `budget_bytes`.

    A video strip is used as it is, whatever its crop budget, so its features are kept once. `clear` (the
    model changed) also refuses features computed before it.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.generation = 0
        self._items: OrderedDict[tuple[str, int], Tensor] = OrderedDict()
        self._used = 0
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self._used

    def __contains__(self, segment: ImageSegment) -> bool:
        with self._lock:
            return image_key(segment) in self._items

    def get(self, segment: ImageSegment, compute: Callable[[], Tensor]) -> Tensor:
        key = image_key(segment)
        with self._lock:
            generation = self.generation
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        features = compute()
        size = features.numel() * features.element_size()
        with self._lock:
            if generation == self.generation and size <= self.budget_bytes and key not in self._items:
                self._items[key] = features
                self._used += size
                while self._used > self.budget_bytes:
                    _, old = self._items.popitem(last=False)
                    self._used -= old.numel() * old.element_size()
        return features

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._items.clear()
            self._used = 0
