"""The near-miss guard of the semantic cache: pure checks beyond cosine similarity.

With all-MiniLM-L6-v2, "send 100 dollars from Alice to Bob" and its reversal score about
0.99, above most true paraphrases (GPTCache issue #694 reports the same), so a threshold
alone cannot keep such requests apart. Before a semantic hit is served, the request and
the cached request must agree on what similarity is blind to:

- numbers (digits and number words, "three" == "3"),
- negation ("not", "never", "without", "don't", ...),
- antonyms from a small lexicon (largest/smallest, buy/sell, on/off, enable/disable, ...),
- named entities (capitalized words inside a sentence: "Austria" is not "Australia"),
- the order of the words around direction markers ("from A to B", "X than Y", "X into Y")
  and of entities,
- two content words trading places ("the dog chased the cat" / "the cat chased the dog"),
- the kind of answer asked for (who / when / where),
- a single changed content word in otherwise identical wording: the same request with
  one slot filled otherwise ("time complexity" / "space complexity", "into Spanish" /
  "into French", "in fahrenheit" / "in celsius", MiniLM: 0.86) is another request, unless
  the two words are synonyms from a small lexicon ("book" / "novel", "book" / "reserve",
  "how fast" / "the speed"),
- a qualifier added or dropped: one text names everything the other names and more
  ("ibuprofen" / "ibuprofen while pregnant", "lasagna" / "vegan lasagna", "a git branch" /
  "a remote git branch", "this email" / "this email in formal tone", MiniLM: 0.80-0.90).
  Synonyms count as the same word, and a few words are not taken for a qualifier: courtesy
  ("kindly", "thanks"), a verb that only opens the request ("Explain how a fridge works" /
  "How does a fridge work?"), a few function words ("to", "using", "have") and a generic
  noun after a shared word ("the capital city of France"). See _COURTESY and below. Not
  exempt, although they read like filler: "quick", "briefly", "short", "simply", "just",
  "only" (each narrows the request or its answer: "a quick lasagna recipe"). Two texts
  that each name something the other does not (a rewording: "the boiling point of water" /
  "what temperature does water boil at") are left to the threshold: rejecting those too
  would drop the labelled set's paraphrase hit rate from 0.84 to 0.68.

Each check returns the reason for a rejection, which the cache counts as a near-miss.
The checks are deliberately conservative: a rejected paraphrase costs one engine call,
a false hit serves a wrong answer.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+(?:\.\d+)?")

_NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12, "half": 0.5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "once": 1, "twice": 2,
}
_MULTIPLIERS = {"hundred", "thousand", "million", "billion"}

_NEGATIONS = {"not", "no", "never", "without", "none", "nobody", "nothing", "neither", "nor",
              "cannot", "nowhere", "except", "excluding"}

_ANTONYMS = [
    ("largest", "smallest"), ("biggest", "smallest"), ("large", "small"), ("big", "small"),
    ("larger", "smaller"), ("bigger", "smaller"), ("most", "least"), ("more", "less"),
    ("more", "fewer"), ("maximum", "minimum"), ("max", "min"), ("highest", "lowest"),
    ("high", "low"), ("higher", "lower"), ("hottest", "coldest"), ("hot", "cold"),
    ("warmest", "coldest"), ("oldest", "newest"), ("oldest", "youngest"), ("old", "new"),
    ("old", "young"), ("older", "newer"), ("earliest", "latest"), ("first", "last"),
    ("ascending", "descending"), ("increase", "decrease"), ("raise", "lower"),
    ("buy", "sell"), ("bought", "sold"), ("on", "off"), ("open", "close"),
    ("opened", "closed"), ("add", "remove"), ("added", "removed"), ("enable", "disable"),
    ("enabled", "disabled"), ("accept", "decline"), ("accept", "reject"),
    ("allow", "deny"), ("allow", "block"), ("before", "after"), ("above", "below"),
    ("advantages", "disadvantages"), ("pros", "cons"), ("best", "worst"),
    ("better", "worse"), ("true", "false"), ("yes", "no"), ("start", "stop"),
    ("begin", "end"), ("win", "lose"), ("won", "lost"), ("import", "export"),
    ("upload", "download"), ("install", "uninstall"), ("encrypt", "decrypt"),
    ("compress", "decompress"), ("include", "exclude"), ("inside", "outside"),
    ("internal", "external"), ("input", "output"), ("left", "right"), ("north", "south"),
    ("east", "west"), ("up", "down"), ("push", "pull"), ("fast", "slow"),
    ("fastest", "slowest"), ("cheap", "expensive"), ("cheapest", "most"),
    ("heavier", "lighter"), ("heaviest", "lightest"), ("long", "short"),
    ("longest", "shortest"), ("positive", "negative"), ("plus", "minus"),
    ("add", "subtract"), ("lock", "unlock"), ("follow", "unfollow"), ("like", "dislike"),
    ("love", "hate"), ("safe", "dangerous"), ("legal", "illegal"), ("arrive", "depart"),
    ("arrival", "departure"), ("incoming", "outgoing"), ("freezing", "boiling"),
    ("minimum", "maximum"), ("inbound", "outbound"), ("join", "leave"), ("sunrise", "sunset"),
]


def _both_ways(pairs: list[tuple[str, str]]) -> dict[str, set[str]]:
    """word -> the words paired with it, either way round."""
    out: dict[str, set[str]] = {}
    for a, b in pairs:
        out.setdefault(a, set()).add(b)
        out.setdefault(b, set()).add(a)
    return out


_OPPOSITE = _both_ways(_ANTONYMS)

# Words one request may use for the other's without changing what it asks (the one-word
# check below takes any other single changed word as another request).
_SYNONYMS = [
    ("book", "novel"), ("book", "reserve"), ("booking", "reservation"), ("buy", "purchase"),
    ("send", "transfer"), ("pay", "send"),
    ("big", "large"), ("small", "little"), ("tiny", "small"), ("movie", "film"),
    ("fix", "repair"), ("quick", "fast"), ("begin", "start"), ("show", "display"),
    ("show", "list"), ("photo", "picture"), ("car", "automobile"), ("help", "assist"),
    ("tell", "explain"), ("explain", "describe"), ("create", "make"), ("build", "make"),
    ("get", "obtain"), ("find", "locate"), ("choose", "pick"), ("select", "pick"),
    ("choose", "select"), ("idea", "suggestion"), ("recommend", "suggest"),
    ("error", "bug"), ("issue", "problem"), ("simple", "easy"), ("hard", "difficult"),
    ("quickly", "fast"), ("write", "compose"), ("summarize", "summarise"), ("color", "colour"),
    ("tallest", "highest"), ("nearest", "closest"), ("job", "work"), ("kid", "child"),
    ("cost", "price"), ("shop", "store"), ("road", "street"), ("answer", "reply"),
    # a measure asked for with "how": "How fast is light?" / "What is the speed of light?"
    ("fast", "speed"), ("long", "length"), ("tall", "height"), ("far", "distance"),
    ("old", "age"), ("heavy", "weight"),
]
_SAME = _both_ways(_SYNONYMS)

# Question words that name the kind of answer: a who-question is not a when-question.
_ASKS_FOR = {"who", "whom", "whose", "when", "where"}

# Words whose neighbours' order carries meaning ("from A to B", "A than B", "A into B").
_DIRECTIONAL = {"from", "to", "into", "than", "versus", "vs", "over", "onto", "toward", "towards"}
_SKIP = {"a", "an", "the", "my", "your", "our", "their", "his", "her", "its", "this", "that"}
_STOPWORDS = _SKIP | {
    "is", "are", "was", "were", "be", "been", "do", "does", "did", "i", "you", "we", "they",
    "he", "she", "it", "of", "in", "on", "at", "for", "with", "by", "and", "or", "what",
    "which", "who", "how", "why", "when", "where", "can", "could", "should", "would", "will",
    "me", "please", "s", "what's", "whats",
}


# The qualifier check (near_miss, last) compares the content words of the two texts as sets and
# rejects when one text names all the other names and more. A word in one of these sets is not
# taken for a qualifier, because adding it does not change what a right answer is:
#
# - courtesy and greetings ("please", "could", "would", "can", "you" are stopwords already).
#   Deliberately NOT here, although they read like filler: "quick"/"quickly", "brief"/"briefly",
#   "short", "simply", "just", "only", "now", "really": each can narrow the request or the
#   form of its answer ("a quick lasagna recipe", "summarize this briefly", "explain it
#   simply", "just the code"), which is exactly what the check is for.
_COURTESY = {"kindly", "pls", "plz", "thank", "hey", "hi", "hello", "possibly"}
# - function words that are not stopwords (the direction check needs "to"): "Explain
#   recursion to / for a beginner", "a query that selects / to select", "in CSS" / "using
#   CSS", "How many days are in / does a leap year have?", "Tell me about the history of
#   jazz" / "Describe the history of jazz".
_LIGHT = {"to", "using", "via", "about", "regarding", "have", "has", "had", "there"}
# - a verb that opens the request and only frames it: "Explain how a refrigerator works" asks
#   what "How does a refrigerator work?" asks; "Calculate 15 percent of 80." / "What is 15
#   percent of 80?"; "Open report.txt and count the lines." / "Count the lines in report.txt.".
#   Only as the first content word (after courtesy), where it is the imperative ("What time is
#   the show?" names a show; "sort a list" a list).
_FRAMING = {"explain", "describe", "tell", "show", "give", "get", "find", "calculate", "compute",
            "suggest", "recommend", "check", "list", "provide", "help", "open"}
# - "cause" or "reason" where the other text asks "why": "Why does Earth have seasons?" /
#   "What causes the seasons on Earth?" (without a "why", "What causes inflation?" is not
#   "What is inflation?").
_WHY = {"cause", "reason"}
# - a generic noun that ends a phrase whose other word both texts share: "the capital city of
#   France", "on a Windows machine", "in the Python language". Not when another word follows
#   ("an app password" is not "a password").
_GENERIC_HEADS = {"city", "town", "country", "machine", "computer", "pc", "device", "language"}


def _tokens(text: str) -> list[tuple[str, str]]:
    """(original, normalized) tokens; possessive 's and n't are split off."""
    out: list[tuple[str, str]] = []
    for raw in _TOKEN.findall(text):
        low = raw.lower()
        if low.endswith("n't"):
            stem = {"won't": "will", "can't": "can", "shan't": "shall"}.get(low, low[:-3])
            out += [(raw[:-3], stem), ("n't", "not")]
        elif low.endswith("'s"):
            out.append((raw[:-2], low[:-2]))
        else:
            out.append((raw, low))
    return out


def _numbers(tokens: list[tuple[str, str]]) -> list[float]:
    """Numeric values in order: digits, and number words ("three hundred" == 300)."""
    values: list[float] = []
    pending: float | None = None
    for _, low in tokens:
        if low[0].isdigit():
            if pending is not None:
                values.append(pending)
                pending = None
            values.append(float(low))
        elif low in _NUMBER_WORDS:
            n = float(_NUMBER_WORDS[low])
            if low in _MULTIPLIERS and pending is not None:
                pending *= n
            elif pending is not None and pending >= 20 and n < 10:
                pending += n  # "twenty one"
            else:
                if pending is not None:
                    values.append(pending)
                pending = n
        elif pending is not None:
            values.append(pending)
            pending = None
    if pending is not None:
        values.append(pending)
    return values


def _entities(tokens: list[tuple[str, str]]) -> list[str]:
    """Capitalized words that do not start a sentence, and all-caps words, in order."""
    out: list[str] = []
    sentence_start = True
    for raw, low in tokens:
        letter = len(raw) == 1 and raw.isupper() and raw != "I"  # "server A"
        if raw[:1].isupper() and not sentence_start and (low not in _STOPWORDS or letter):
            out.append(low)
        sentence_start = False
    return out


def _directional_neighbours(tokens: list[tuple[str, str]]) -> list[str]:
    words = [low for _, low in tokens if low not in _SKIP]
    out: list[str] = []
    for i, w in enumerate(words):
        if w in _DIRECTIONAL:
            if i > 0 and words[i - 1] not in _STOPWORDS:
                out.append(words[i - 1])
            if i + 1 < len(words) and words[i + 1] not in _STOPWORDS:
                out.append(words[i + 1])
    return out


def _relative_order(seq: list[str], shared: set[str]) -> list[str]:
    seen: list[str] = []
    for w in seq:
        if w in shared and w not in seen:
            seen.append(w)
    return seen


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _content(tokens: list[tuple[str, str]]) -> list[tuple[int, str]]:
    """(position, stem) of the words that carry content."""
    out = []
    for i, (_, low) in enumerate(tokens):
        if low in _STOPWORDS:
            continue
        if low[0].isdigit() or low in _NUMBER_WORDS:  # "two" == "2" (numbers checked apart)
            low = "#" + str(float(low) if low[0].isdigit() else float(_NUMBER_WORDS[low]))
        out.append((i, _stem(low)))
    return out


def near_miss(request: str, cached: str) -> str | None:
    """Why serving `cached`'s answer to `request` would be wrong, or None if the guard passes."""
    a, b = _tokens(request), _tokens(cached)
    if _numbers(a) != _numbers(b) and sorted(_numbers(a)) != sorted(_numbers(b)):
        return "numbers differ"
    words_a, words_b = {w for _, w in a}, {w for _, w in b}
    if bool(words_a & _NEGATIONS) != bool(words_b & _NEGATIONS):
        return "negation differs"
    for w in words_a - words_b:
        if _OPPOSITE.get(w, set()) & (words_b - words_a):
            return "antonyms"
    ents_a, ents_b = _entities(a), _entities(b)
    if set(ents_a) != set(ents_b):
        return "entities differ"
    shared_ents = set(ents_a)
    if _relative_order(ents_a, shared_ents) != _relative_order(ents_b, shared_ents):
        return "entities swapped"
    if _numbers(a) != _numbers(b):
        return "numbers reordered"
    dir_a, dir_b = _directional_neighbours(a), _directional_neighbours(b)
    shared_dir = set(dir_a) & set(dir_b)
    if len(shared_dir) > 1 and (_relative_order(dir_a, shared_dir)
                                != _relative_order(dir_b, shared_dir)):
        return "direction swapped"
    if words_a & _ASKS_FOR != words_b & _ASKS_FOR:
        return "asks for something else"
    content_a, content_b = _content(a), _content(b)
    words_only_a, words_only_b = [w for _, w in content_a], [w for _, w in content_b]
    if sorted(words_only_a) == sorted(words_only_b):
        moved = [i for i, (x, y) in enumerate(zip(words_only_a, words_only_b, strict=True))
                 if x != y]
        if len(moved) == 2 and moved[1] - moved[0] >= 2:  # two words trade places
            return "word order differs"
    elif len(content_a) == len(content_b) > 1:
        changed = [i for i, (x, y) in enumerate(zip(words_only_a, words_only_b, strict=True))
                   if x != y]
        if len(changed) == 1:
            x, y = words_only_a[changed[0]], words_only_b[changed[0]]
            if y not in _SAME.get(x, ()):
                return "one term changed"
    extra_a, extra_b = _qualifier_extras(a, content_a, content_b, b)
    if extra_a and not extra_b:
        return "qualifier added"
    if extra_b and not extra_a:
        return "qualifier dropped"
    return None


def _qualifier_extras(a: list[tuple[str, str]], content_a: list[tuple[int, str]],
                      content_b: list[tuple[int, str]], b: list[tuple[str, str]],
                      ) -> tuple[set[str], set[str]]:
    """The content stems each text names and the other does not (a synonym counts as named),
    leaving out the words that do not qualify a request (_COURTESY, _LIGHT, _FRAMING as the
    opening verb, _WHY against a "why", _GENERIC_HEADS after a shared word). One side empty
    and the other not: the other text adds a qualifier ("a recipe for lasagna" / "a recipe
    for vegan lasagna")."""
    all_a, all_b = {w for _, w in content_a}, {w for _, w in content_b}
    why_a, why_b = any(w == "why" for _, w in a), any(w == "why" for _, w in b)

    def unnamed(words: set[str], other: set[str]) -> set[str]:
        return {w for w in words if w not in other and not _SAME.get(w, set()) & other}

    return (unnamed(_core(a, content_a, all_b, why_b and not why_a), all_b),
            unnamed(_core(b, content_b, all_a, why_a and not why_b), all_a))


def _core(tokens: list[tuple[str, str]], content: list[tuple[int, str]],
          other: set[str], other_asks_why: bool) -> set[str]:
    """The stems of `content` that could qualify the request (see _qualifier_extras)."""
    out: set[str] = set()
    opening = True  # no content word but courtesy yet ("Hi, explain ...")
    for i, stem in content:
        if stem in _COURTESY:
            continue
        first, opening = opening, False
        if stem in _LIGHT or (first and stem in _FRAMING) or (other_asks_why and stem in _WHY):
            continue
        if (stem in _GENERIC_HEADS and i > 0 and tokens[i - 1][1] not in _STOPWORDS
                and _stem(tokens[i - 1][1]) in other
                and (i + 1 == len(tokens) or tokens[i + 1][1] in _STOPWORDS)):
            continue
        out.add(stem)
    return out
