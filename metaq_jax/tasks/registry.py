"""Named task families: `make_family(name, **overrides)` and `register_family(name, factory)`.

A family's factory is found, by name, among
  - the families registered with `register_family` in this process (the built-in ones are
    registered by `metaq_jax.tasks`, by module path, so nothing is imported until one is built);
  - the entry points of group `metaq_jax.families` of the installed packages: a package that
    declares `[project.entry-points."metaq_jax.families"] mine = "my_package.families:make_mine"`
    gives the family `mine` to `metaq train --family mine` and to `make_family("mine")`.
A name registered in this process wins over an entry point of the same name.
"""

import importlib
from importlib import metadata
from typing import Any, Callable

from metaq_jax.errors import InputError
from metaq_jax.tasks.family import TaskFamily

ENTRY_POINT_GROUP = "metaq_jax.families"

FamilyFactory = Callable[..., TaskFamily]
"""`factory(**overrides) -> TaskFamily`."""

_FACTORIES: dict[str, FamilyFactory] = {}


def lazy_factory(target: str, **defaults: Any) -> FamilyFactory:
    """A factory that imports `"package.module:function"` only when called.

    Args:
      target: where the real factory lives, as `module:attribute`.
      **defaults: keyword arguments passed before the caller's overrides.

    Returns:
      `factory(**overrides) -> TaskFamily`.
    """
    module, attribute = target.split(":")

    def factory(**overrides):
        return getattr(importlib.import_module(module), attribute)(**{**defaults, **overrides})

    return factory


def register_family(name: str, factory: FamilyFactory, *, overwrite: bool = False) -> None:
    """Register `factory(**overrides) -> TaskFamily` under `name`.

    A user's own gymnax environment works without touching metaq_jax:
    `register_family("mine", lambda **kw: TaskFamily("mine", MyEnv(), my_sampler, **kw))`.

    Args:
      name: the family's name, as `MetaConfig.family` gives it.
      factory: builds the family; called by `make_family` with its overrides.
      overwrite: replace a family already registered under `name`.

    Returns:
      Nothing; `make_family(name)` builds the family from then on.

    Raises:
      InputError: `name` is empty or taken (and not `overwrite`).
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"family name = {name!r}: must be a non-empty string")
    if name in _FACTORIES and not overwrite:
        raise InputError(f"family name = {name!r}: already registered (pass overwrite=True to replace it)")
    _FACTORIES[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def make_family(name: str, **overrides: Any) -> TaskFamily:
    """Build the family `name`, passing `overrides` to its factory.

    Args:
      name: a registered family or an installed entry point of group `metaq_jax.families`.
      **overrides: keyword arguments of the family's factory (e.g. `num_arms` for `bandit`).

    Returns:
      The `TaskFamily`.

    Raises:
      InputError: no family has that name.
    """
    if name in _FACTORIES:
        return _FACTORIES[name](**overrides)
    entry_point = _entry_points().get(name)
    if entry_point is None:
        raise InputError(f"MetaConfig.family = {name!r}: must be one of {', '.join(list_families())}")
    return entry_point.load()(**overrides)


def list_families() -> list[str]:
    """The names of every family `make_family` can build; imports no family.

    Returns:
      The registered and entry-point names, sorted.
    """
    return sorted(set(_FACTORIES) | set(_entry_points()))
