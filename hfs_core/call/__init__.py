"""One model call over its entries, and the rotating Agno models whose calls they are.

A call runs over entries, rotating models in order of preference: a plain model's one entry is
itself; a tier (`hfs_core.tier`) passes its entries, and `CallHooks` saying what to log and how
to refuse. Each attempt leases a key from an entry's pool and runs that provider's own Agno code
with the key's SDK client, so a provider's reply is never read by another's parser.

- `rotating`: `RotatingModel`, `rotating_class`, `build_model` and `model_recipe`; `run_call` and `arun_call`.
- `attempts`: `Call`, the attempt loop and its failure policy; `CallHooks`.
- `steps`: the loop's steps and the two drivers (threads, coroutines).
- `entries`: `Entries`, what each entry has done in one call.
- `refusal`: what ends a call no entry can serve (a plain model's error, or a tier's refusal).
- `messages`: the provider data naming who served a chunk, and messages prepared for another provider.
- `clients`: `ClientCache`, the SDK clients of a pool's keys.
"""

from hfs_core.call.attempts import PLAIN, Call, CallHooks, served_model
from hfs_core.call.clients import ClientCache
from hfs_core.call.entries import Entries, Entry
from hfs_core.call.messages import SERVED_BY, for_provider
from hfs_core.call.refusal import label, plain_refusal, tier_refusal, what_failed, why_not
from hfs_core.call.rotating import (
    ModelRecipe,
    RotatingModel,
    arun_call,
    build_model,
    model_recipe,
    rotating_class,
    run_call,
)

__all__ = [
    "PLAIN",
    "SERVED_BY",
    "Call",
    "CallHooks",
    "ClientCache",
    "Entries",
    "Entry",
    "ModelRecipe",
    "RotatingModel",
    "arun_call",
    "build_model",
    "for_provider",
    "label",
    "model_recipe",
    "plain_refusal",
    "rotating_class",
    "run_call",
    "served_model",
    "tier_refusal",
    "what_failed",
    "why_not",
]
