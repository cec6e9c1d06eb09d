"""Environments: the protocol, the registry and the video QA env."""

from vagen.env.base import Env, Observation, StepResult
from vagen.env.registry import list_envs, make_env, register_env

__all__ = ["Env", "Observation", "StepResult", "list_envs", "make_env", "register_env"]
