"""How many leading positions two prompts share: the tests' oracle for what a prefix cache may reuse.

Not a test module (the test files import it). Equal leading segments count whole; in the first text
segments that differ, their common leading ids count.
"""

from __future__ import annotations

from ixc_app.ixc.prompt import Prompt, TextSegment


def prompt_prefix_len(a: Prompt, b: Prompt) -> int:
    shared = 0
    for left, right in zip(a.segments, b.segments, strict=False):
        if left == right:
            shared += len(left.token_ids) if isinstance(left, TextSegment) else left.num_tokens
            continue
        if isinstance(left, TextSegment) and isinstance(right, TextSegment):
            for x, y in zip(left.token_ids, right.token_ids, strict=False):
                if x != y:
                    break
                shared += 1
        break
    return shared
