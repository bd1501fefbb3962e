"""The planner: Ostinato's control plane (programs, global queue, priorities, routing)."""
