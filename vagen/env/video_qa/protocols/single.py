"""`single`: the policy answers at once from the opening frames (single-turn baselines)."""

from vagen.env.video_qa.protocols.spec import Protocol, register_protocol

SINGLE = register_protocol(Protocol(name="single", action_type="answer"))
