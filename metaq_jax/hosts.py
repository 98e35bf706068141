"""Joining a multi-host run: `jax.distributed.initialize` from flags or environment variables.

JAX refuses to join once its backend has started, and importing gymnax starts it (it builds
arrays at import), so `metaq_jax/__init__.py` joins from the environment before importing
anything else. This module therefore imports nothing of ours.
"""

import os
import sys

import jax

# The settings and the environment variables that give them. JAX itself reads only
# JAX_COORDINATOR_ADDRESS; the other two follow its naming.
ENV_VARS = {"coordinator_address": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
            "process_id": "JAX_PROCESS_ID"}


def settings_from(environ) -> dict:
    """The settings given in `environ`; {} for a single-process run.

    Raises `ValueError` naming the variable when a count or id is not an integer.
    """
    settings = {}
    for name, var in ENV_VARS.items():
        value = environ.get(var, "").strip()
        if not value:
            continue
        if name != "coordinator_address":
            if not value.isdigit():
                raise ValueError(f"{var} = {value!r}: must be a non-negative integer")
            value = int(value)
        settings[name] = value
    return settings


def as_environ(settings: dict) -> dict[str, str]:
    """`settings` as the environment variables that give them."""
    return {ENV_VARS[name]: str(value) for name, value in settings.items() if value is not None}


def join(settings: dict) -> None:
    """`jax.distributed.initialize(**settings)`; nothing for {}. Settings left out are detected
    by JAX (SLURM, Open MPI, ...). Raises `ValueError` in one line when JAX refuses them."""
    if not settings:
        return
    try:
        jax.distributed.initialize(**settings)
    except (ValueError, TypeError, RuntimeError) as error:
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        given = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        raise ValueError(f"jax.distributed.initialize({given}) failed: {first}") from None


def join_from_environment() -> None:
    """Join the run the environment describes, if any; a refusal is one line and exit status 2."""
    try:
        join(settings_from(os.environ))
    except ValueError as error:
        print(f"metaq: error: {error}", file=sys.stderr)
        sys.exit(2)
