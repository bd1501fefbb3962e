"""The gateway: Ostinato's public edge (gRPC Gateway service; OpenAI-compatible HTTP later)."""
