"""Environments: the protocol, the registry, the checker and the video QA env."""

from vagen.env.base import Env, Observation, StepResult
from vagen.env.checker import EnvCheckError, check_env
from vagen.env.registry import list_envs, make_env, register_env

__all__ = ["Env", "EnvCheckError", "Observation", "StepResult", "check_env", "list_envs",
           "make_env", "register_env"]
