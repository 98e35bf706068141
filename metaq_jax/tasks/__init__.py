"""Task families and their registry; the built-in families register themselves here.

Each family module imports gymnax, and importing gymnax starts JAX's backend (it builds arrays
at import). So the built-ins are registered by module path and the modules' public names are
imported on first use (`metaq_jax.tasks.make_nav2d`), never by `import metaq_jax`.
"""

import importlib
import itertools

from metaq_jax.tasks.family import TaskFamily
from metaq_jax.tasks.registry import lazy_factory, list_families, make_family, register_family

_BUILTIN = {
    "nav2d": "nav2d:make_nav2d",
    "cartpole": "cartpole:make_cartpole",
    "bandit": "bandit:make_bandit",
    "bandit-gaussian": "bandit:make_gaussian_bandit",
    "acrobot": "classic_control:make_acrobot",
    "mountaincar": "classic_control:make_mountaincar",
    "pendulum": "classic_control:make_pendulum",
    "tabular-mdp": "tabular:make_tabular_mdp",
    "metamaze": "meta_gymnax:make_metamaze",
    "pointrobot": "meta_gymnax:make_pointrobot",
    "asterix": "minatar:make_asterix",
    "recsys": "recsys:make_recsys",
    "gridworld": "gridworld:make_gridworld",
    "cheetah-vel": "locomotion:make_cheetah_vel",
    "cheetah-dir": "locomotion:make_cheetah_dir",
    "ant-dir": "locomotion:make_ant_dir",
    "ant-goal": "locomotion:make_ant_goal",
}
for _name, _target in _BUILTIN.items():
    register_family(_name, lazy_factory(f"metaq_jax.tasks.{_target}"))
# The RL² bandit grid (Duan et al. 2016): k arms, n pulls per trial.
for _k, _n in itertools.product((5, 10, 50), (10, 100, 500)):
    register_family(f"bandit-k{_k}-n{_n}", lazy_factory("metaq_jax.tasks.bandit:make_bandit_grid",
                                                        num_arms=_k, num_pulls=_n))

# Public names of the family modules: imported on first access.
_LAZY = {
    "acrobot_params": "classic_control", "cartpole_params": "cartpole", "make_acrobot": "classic_control",
    "make_ant_dir": "locomotion", "make_ant_goal": "locomotion", "make_asterix": "minatar",
    "make_bandit": "bandit", "make_cartpole": "cartpole",
    "make_cheetah_dir": "locomotion", "make_cheetah_vel": "locomotion",
    "make_gaussian_bandit": "bandit", "make_gridworld": "gridworld", "make_metamaze": "meta_gymnax",
    "make_mountaincar": "classic_control", "make_nav2d": "nav2d", "make_pendulum": "classic_control",
    "make_pointrobot": "meta_gymnax", "make_recsys": "recsys", "make_tabular_mdp": "tabular",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"metaq_jax.tasks.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'metaq_jax.tasks' has no attribute {name!r}")


__all__ = ["TaskFamily", "list_families", "make_family", "register_family", *sorted(_LAZY)]
