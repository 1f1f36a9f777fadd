"""The first keys of a generation's `info`, the same in A1111, Forge and SD.Next."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .planning import Plan

__all__ = ["info_head"]


def info_head(plan: Plan) -> dict[str, Any]:
    """The first keys of a generation's `info`, the same in A1111, Forge and SD.Next."""
    req = plan.req
    return {
        "prompt": plan.prompts[0] if plan.prompts else req["prompt"],
        "all_prompts": plan.prompts,
        "negative_prompt": plan.negatives[0] if plan.negatives else req["negative_prompt"],
        "all_negative_prompts": plan.negatives,
        "seed": plan.seeds[0] if plan.seeds else -1,
        "all_seeds": plan.seeds,
        "subseed": plan.subseeds[0] if plan.subseeds else -1,
        "all_subseeds": plan.subseeds,
        "subseed_strength": plan.subseed_strength,
        "width": plan.width,
        "height": plan.height,
        "sampler_name": plan.sampler,
    }
