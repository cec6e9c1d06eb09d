"""Environments: the protocol, the registry, the checker, env-config groups and the video QA
env."""

from vagen.env.base import Env, Observation, StepInfo, StepResult
from vagen.env.checker import EnvCheckError, check_env
from vagen.env.groups import load_env_groups
from vagen.env.registry import list_envs, make_env, register_env

__all__ = ["Env", "EnvCheckError", "Observation", "StepInfo", "StepResult", "check_env",
           "list_envs", "load_env_groups", "make_env", "register_env"]
