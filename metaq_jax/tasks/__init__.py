"""Task families and their registry; the built-in families register themselves here."""

from metaq_jax.tasks.bandit import BANDIT_GRID, make_bandit, make_gaussian_bandit
from metaq_jax.tasks.cartpole import cartpole_params, make_cartpole
from metaq_jax.tasks.classic_control import acrobot_params, make_acrobot, make_mountaincar, make_pendulum
from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.gridworld import make_gridworld
from metaq_jax.tasks.meta_gymnax import make_metamaze, make_pointrobot
from metaq_jax.tasks.minatar import make_asterix
from metaq_jax.tasks.nav2d import make_nav2d
from metaq_jax.tasks.recsys import make_recsys
from metaq_jax.tasks.registry import list_families, make_family, register_family
from metaq_jax.tasks.tabular import make_tabular_mdp

register_family("nav2d", make_nav2d)
register_family("cartpole", make_cartpole)
register_family("bandit", make_bandit)
register_family("bandit-gaussian", make_gaussian_bandit)
for _name, _factory in BANDIT_GRID.items():
    register_family(_name, _factory)
register_family("acrobot", make_acrobot)
register_family("mountaincar", make_mountaincar)
register_family("pendulum", make_pendulum)
register_family("tabular-mdp", make_tabular_mdp)
register_family("metamaze", make_metamaze)
register_family("pointrobot", make_pointrobot)
register_family("asterix", make_asterix)
register_family("recsys", make_recsys)
register_family("gridworld", make_gridworld)

__all__ = [
    "TaskFamily",
    "acrobot_params",
    "cartpole_params",
    "list_families",
    "make_acrobot",
    "make_asterix",
    "make_bandit",
    "make_cartpole",
    "make_family",
    "make_gaussian_bandit",
    "make_gridworld",
    "make_metamaze",
    "make_mountaincar",
    "make_nav2d",
    "make_pendulum",
    "make_pointrobot",
    "make_recsys",
    "make_tabular_mdp",
    "register_family",
]
