"""The simulated SGLang engine: serves SGLang's native HTTP API on CPU. Output is SIMULATED."""
