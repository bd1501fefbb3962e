"""The near-miss guard, table-driven (pure: no model)."""

from __future__ import annotations

import pytest

from cache.guard import near_miss


@pytest.mark.parametrize(("request_text", "cached", "reason"), [
    ("Send 100 dollars to Bob.", "Send 1000 dollars to Bob.", "numbers differ"),
    ("Order two pizzas.", "Order 2 pizzas.", None),  # number words are numbers
    ("Order three hundred pens.", "Order 300 pens.", None),
    ("Which foods contain gluten?", "Which foods don't contain gluten?", "negation differs"),
    ("Show flights with layovers.", "Show flights without layovers.", "negation differs"),
    ("Increase the volume.", "Decrease the volume.", "antonyms"),
    ("Turn on the lights.", "Turn off the lights.", "antonyms"),
    ("What is the capital of Australia?", "What is the capital of Austria?", "entities differ"),
    ("Send 100 dollars from Alice to Bob.", "Send 100 dollars from Bob to Alice.",
     "entities swapped"),
    ("Convert Celsius to Fahrenheit.", "Convert Fahrenheit to Celsius.", "entities swapped"),
    ("Convert dollars to euros.", "Convert euros to dollars.", "direction swapped"),
    ("The dog chased the cat.", "The cat chased the dog.", "word order differs"),
    ("Who wrote Emma?", "When was Emma published?", "asks for something else"),
    ("What is the time complexity of quicksort?", "What is the space complexity of quicksort?",
     "one term changed"),
    # one slot filled otherwise: MiniLM scores these 0.86, over the default 0.80
    ("Translate 'good morning' into spanish.", "Translate 'good morning' into french.",
     "one term changed"),
    ("What is the boiling point of water in fahrenheit?",
     "What is the boiling point of water in celsius?", "one term changed"),
    ("What is the weather in paris today?", "What is the weather in london today?",
     "one term changed"),
    ("Write a poem about cats.", "Write a poem about dogs.", "one term changed"),
    # paraphrases pass
    ("Recommend a good science fiction book.", "Recommend a good science fiction novel.", None),
    ("Book a table for 2 at 7 pm.", "Reserve a table for 2 at 7 pm.", None),
    ("What is the tallest mountain in the world?", "Which mountain is the tallest in the world?",
     None),
    ("How many legs does a spider have?", "How many legs do spiders have?", None),
    ("Recommend a good science fiction film.", "Recommend a good science fiction movie.", None),
    ("Summarize this report please.", "Summarize this report.", None),
])
def test_near_miss(request_text: str, cached: str, reason: str | None) -> None:
    assert near_miss(request_text, cached) == reason
