"""The semantic cache's decision on a hand-labelled set of paraphrases and near-misses,
with the real embedding model, at the shipped defaults (threshold and guard).

Prints precision and hit rate (run with -s to see them). The guard was designed with this
set in view, so these figures are optimistic for other traffic.
"""

from __future__ import annotations

from pathlib import Path

from cache.embedder import MiniLM
from cache.guard import near_miss
from cache.modes import DEFAULT_THRESHOLD

PAIRS = Path(__file__).with_name("labelled_pairs.txt")


def load_pairs() -> list[tuple[str, str, str]]:
    rows = []
    for line in PAIRS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            label, first, second = (part.strip() for part in line.split(" | "))
            rows.append((label, first, second))
    return rows


def test_false_hits_at_most_one_percent_while_most_paraphrases_hit(minilm: MiniLM) -> None:
    rows = load_pairs()
    vectors = minilm.encode([t for _, a, b in rows for t in (a, b)])
    served_true = served_false = paraphrases = near_misses = 0
    cosine_alone_false = 0
    for i, (label, cached, request) in enumerate(rows):
        similarity = float(vectors[2 * i] @ vectors[2 * i + 1])
        served = similarity >= DEFAULT_THRESHOLD and near_miss(request, cached) is None
        if label == "hit":
            paraphrases += 1
            served_true += served
        else:
            near_misses += 1
            served_false += served
            cosine_alone_false += similarity >= DEFAULT_THRESHOLD
    precision = served_true / max(1, served_true + served_false)
    hit_rate = served_true / paraphrases
    print(f"\nlabelled set: {paraphrases} paraphrases, {near_misses} near-misses; threshold "
          f"{DEFAULT_THRESHOLD}: hit rate {hit_rate:.3f}, precision {precision:.3f}, false hits "
          f"{served_false}/{near_misses}; cosine alone would serve {cosine_alone_false} near-misses")
    assert near_misses >= 60 and paraphrases >= 50
    assert served_false / near_misses <= 0.01
    assert hit_rate >= 0.8
    assert cosine_alone_false > near_misses / 2  # the guard, not the threshold, does the work
