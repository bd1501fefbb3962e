"""A ReAct-style agent against a running mesh (`ostinato up`), with a client-side tool.

    python examples/react_agent.py [--gateway 127.0.0.1:50051] [--api-key KEY]

The engines of `ostinato up` are simulated, so the model's words are synthetic; the tool
loop, dependencies, routing and usage accounting are real.
"""

from __future__ import annotations

import argparse

import ostinato


def weather(city: str) -> str:
    return {"lyon": "14C, light rain", "paris": "12C, cloudy"}.get(city.lower(), "unknown")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--api-key")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    messages = [
        {"role": "system", "content": "Answer with Thought/Action/Observation steps."},
        {"role": "user", "content": "Should I take an umbrella in Lyon today?"},
    ]
    with ostinato.Client(args.gateway, api_key=args.api_key) as client:
        with client.program(program_class="react") as program:
            for step in range(args.steps):
                out = program.call(messages=messages, max_tokens=40, temperature=0.0)
                print(f"step {step}: {out.worker_id} {out.latency_s * 1000:.0f} ms "
                      f"{out.usage.prompt_tokens} in / {out.usage.completion_tokens} out: "
                      f"{out.text[:60]}")
                messages += [{"role": "assistant", "content": out.text},
                             {"role": "tool", "content": "weather(Lyon) = " + weather("Lyon")}]
        print(program.summary)


if __name__ == "__main__":
    main()
