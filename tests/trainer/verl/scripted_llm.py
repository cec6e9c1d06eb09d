"""A scripted stand-in for verl's LLM server client, and the actions it plays. (A module of
its own, not conftest: `from conftest import` would pick up another folder's conftest when
the whole suite runs.)"""

from __future__ import annotations

from typing import Any

RETRIEVE = "<think>The change is between frames 2 and 5.</think><retrieve>2,5</retrieve>"
ANSWER = "<think>It turned yellow.</think><answer>B</answer>"


class ScriptedServerManager:
    """Stands in for verl's `LLMServerClient`: on CPU there is no vLLM server to sample from,
    so `generate` returns the ids of the next scripted action of the trajectory (by request
    id) with log-prob -0.5 per token, and records each request."""

    def __init__(self, tokenizer: Any, actions: list[str]):
        self.tokenizer = tokenizer
        self.actions = actions
        self.requests: list[dict[str, Any]] = []
        self._turns: dict[str, int] = {}

    async def generate(self, request_id: str, *, prompt_ids: list[int],
                       sampling_params: dict[str, Any], image_data: list | None = None,
                       **kwargs: Any):
        from verl.workers.rollout.replica import TokenOutput

        turn = self._turns.get(request_id, 0)
        self._turns[request_id] = turn + 1
        self.requests.append({"request_id": request_id, "prompt_ids": list(prompt_ids),
                              "sampling_params": dict(sampling_params),
                              "images": list(image_data or [])})
        ids = self.tokenizer.encode(self.actions[turn], add_special_tokens=False)
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")
