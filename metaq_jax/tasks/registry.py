"""Named task families: `make_family(name, **overrides)` and `register_family(name, factory)`."""

from typing import Callable

_FACTORIES: dict[str, Callable] = {}


def register_family(name: str, factory: Callable, *, overwrite: bool = False) -> None:
    """Register `factory(**overrides) -> TaskFamily` under `name`.

    A user's own gymnax environment works without touching metaq_jax:
    `register_family("mine", lambda **kw: TaskFamily("mine", MyEnv(), my_sampler, **kw))`.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"family name = {name!r}: must be a non-empty string")
    if name in _FACTORIES and not overwrite:
        raise ValueError(f"family name = {name!r}: already registered (pass overwrite=True to replace it)")
    _FACTORIES[name] = factory


def make_family(name: str, **overrides):
    """Build the registered family `name`, passing `overrides` to its factory."""
    if name not in _FACTORIES:
        raise ValueError(f"family = {name!r}: must be one of {', '.join(list_families())}")
    return _FACTORIES[name](**overrides)


def list_families() -> list[str]:
    """The registered family names, sorted."""
    return sorted(_FACTORIES)
