"""Task families and their registry; the built-in families register themselves here."""

from metaq_jax.tasks.bandit import make_bandit
from metaq_jax.tasks.cartpole import cartpole_params, make_cartpole
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.nav2d import make_nav2d
from metaq_jax.tasks.registry import list_families, make_family, register_family

register_family("nav2d", make_nav2d)
register_family("cartpole", make_cartpole)
register_family("bandit", make_bandit)

__all__ = [
    "TaskFamily",
    "cartpole_params",
    "list_families",
    "make_bandit",
    "make_cartpole",
    "make_family",
    "make_nav2d",
    "register_family",
]
