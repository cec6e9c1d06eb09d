"""rollout/backends."""
