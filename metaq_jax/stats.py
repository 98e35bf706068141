"""Interval estimates a reviewer accepts, by `rliable` (Agarwal et al. 2021, "Deep RL at the edge
of the statistical precipice").

Scores are `[R, T, P]`: R runs (training seeds × trials per task) of each of T held-out tasks, at
P points (episodes of a trial, or inner steps). Every interval is a stratified bootstrap over runs
*and* tasks (`task_bootstrap=True`): held-out tasks are a sample of the family's distribution, so
the interval covers a new draw of tasks as well as new seeds. Bootstraps are seeded, so a report
is reproducible to the last digit.
"""

import os
import warnings

import numpy as np

from metaq_jax.errors import InputError

BOOTSTRAP_REPS = 2000
"""Bootstrap replications of every interval (rliable's performance profiles use 2000 too); the
environment variable METAQ_BOOTSTRAP_REPS overrides it (fewer: quicker, coarser intervals)."""
PROFILE_POINTS = 41
"""Thresholds τ at which a performance profile is evaluated."""


def bootstrap_reps() -> int:
    """The replications every interval uses: METAQ_BOOTSTRAP_REPS if set, else `BOOTSTRAP_REPS`.

    Returns:
      The number of replications, ≥ 1.

    Raises:
      InputError: METAQ_BOOTSTRAP_REPS is not a positive integer.
    """
    text = os.environ.get("METAQ_BOOTSTRAP_REPS")
    if text is None:
        return BOOTSTRAP_REPS
    if not text.isdigit() or int(text) < 1:
        raise InputError(f"METAQ_BOOTSTRAP_REPS = {text!r}: must be a positive integer")
    return int(text)


def by_task(returns: np.ndarray, num_tasks: int) -> np.ndarray:
    """Every trial's returns `[N, P]`, N = runs × T with the task minor, as scores `[runs, T, P]`.

    Args:
      returns: `[N, P]` every trial's returns.
      num_tasks: T.

    Returns:
      `[N / T, T, P]` float64 scores.

    Raises:
      ValueError: N is not a multiple of `num_tasks`.
    """
    returns = np.asarray(returns, dtype=np.float64)
    if returns.shape[0] % num_tasks:
        raise ValueError(f"{returns.shape[0]} trials do not split into runs of {num_tasks} tasks")
    return returns.reshape(-1, num_tasks, returns.shape[-1])


def _estimates(scores: tuple[np.ndarray, ...], func, reps: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """rliable's point estimate `func(*scores)` and its 95% interval `[2, ...]` (lower, upper).

    One array is bootstrapped over runs and tasks; a pair (X, Y) over each one's runs, task by task.
    """
    # imported here: rliable brings arch, pandas and scipy.stats (1.7 s), which a command that
    # reports no interval (`metaq families`, a bad flag, a run being resumed) need not wait for
    from rliable import library as rly

    data, reps = (scores[0] if len(scores) == 1 else scores), reps or bootstrap_reps()
    # rliable 1.2 resamples with numpy's global generator whatever random_state it is given: seed
    # it for this call only, and give the caller's state back
    outer = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():  # arch deprecates the RandomState that rliable passes it
            warnings.simplefilter("ignore", FutureWarning)
            point, interval = rly.get_interval_estimates({"x": data}, func, task_bootstrap=len(scores) == 1,
                                                         reps=reps, random_state=np.random.RandomState(seed))
    finally:
        np.random.set_state(outer)
    return point["x"], interval["x"]


def _interquartile_mean(flat: np.ndarray) -> np.ndarray:
    """`[P]` means of the middle half of each column of `flat` `[N, P]`.

    `scipy.stats.trim_mean(flat, 0.25, axis=0)` (rliable's IQM) step for step, without its
    argument-checking wrapper, which took most of a bootstrap's time at 0.7 ms a call.
    """
    low = int(0.25 * flat.shape[0])
    high = flat.shape[0] - low
    return np.partition(flat, (low, high - 1), axis=0)[low:high].mean(axis=0)


def mean_and_iqm(scores: np.ndarray, *, reps: int | None = None, seed: int = 0) -> dict[str, list]:
    """The mean and the interquartile mean over runs and tasks at each point, with 95% intervals.

    Args:
      scores: `[R, T, P]`.
      reps: bootstrap replications; None: `bootstrap_reps()`.
      seed: seeds the bootstrap.

    Returns:
      `{"mean", "iqm": [P], "mean_ci", "iqm_ci": [P] of [lower, upper]}`; the same numbers as
      rliable's `aggregate_mean` and `aggregate_iqm` applied to each point's `[R, T]` scores.
    """
    num_points = scores.shape[-1]

    def both(s):  # vectorised over the points: one call per replication, not 2P
        flat = s.reshape(-1, num_points)
        return np.concatenate([flat.mean(axis=0), _interquartile_mean(flat)])

    point, interval = _estimates((scores,), both, reps, seed)
    out = {}
    for i, name in enumerate(("mean", "iqm")):
        part = slice(i * num_points, (i + 1) * num_points)
        out[name] = rounded(point[part])
        out[f"{name}_ci"] = [rounded(pair) for pair in interval[:, part].T]
    return out


def improvement_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) per point, averaged over tasks: rliable's `probability_of_improvement` at each point.

    Ties count one half, as in the Mann-Whitney U statistic rliable computes per task; vectorised
    over tasks and points (rliable's loops over tasks with scipy, too slow to bootstrap).

    Args:
      x: `[Rx, T, P]` scores of X.
      y: `[Ry, T, P]` scores of Y.

    Returns:
      `[P]` probabilities.
    """
    wins = (x[:, None] > y[None, :]).mean(axis=(0, 1))  # [T, P]
    ties = (x[:, None] == y[None, :]).mean(axis=(0, 1))
    return (wins + 0.5 * ties).mean(axis=0)


def improvement(x: np.ndarray, y: np.ndarray, *, reps: int | None = None, seed: int = 0) -> dict[str, list]:
    """"X beats Y": the probability of improvement at each point with its 95% interval.

    Args:
      x: `[Rx, T, P]` scores of X.
      y: `[Ry, T, P]` scores of Y, on the same tasks.
      reps: bootstrap replications; None: `bootstrap_reps()`.
      seed: seeds the bootstrap.

    Returns:
      `{"poi": [P], "poi_ci": [P] of [lower, upper]}`.
    """
    point, interval = _estimates((x, y), improvement_probability, reps, seed)
    return {"poi": rounded(point), "poi_ci": [rounded(pair) for pair in interval.T]}


def profile_thresholds(scores: list[np.ndarray], num: int = PROFILE_POINTS) -> np.ndarray:
    """`[num]` thresholds τ spanning every score in `scores` (arrays of any shape).

    Args:
      scores: the score arrays of every row shown together.
      num: how many thresholds.

    Returns:
      `[num]` evenly spaced from the smallest score to the largest.
    """
    values = np.concatenate([np.ravel(s) for s in scores])
    return np.linspace(values.min(), values.max(), num)


def _fraction_above(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """`[M]`: rliable's `score_distributions(scores, taus)` in one comparison, not a Python call per τ."""
    return (np.ravel(scores)[:, None] > taus[None, :]).mean(axis=0)


def performance_profile(scores: np.ndarray, taus: np.ndarray, *, reps: int | None = None,
                        seed: int = 0) -> dict[str, list]:
    """rliable's score distribution: the fraction of runs × tasks scoring above each τ, with 95% intervals.

    Args:
      scores: `[R, T]` scores at one point.
      taus: `[M]` thresholds.
      reps: bootstrap replications; None: `bootstrap_reps()`.
      seed: seeds the bootstrap.

    Returns:
      `{"tau", "fraction": [M], "fraction_ci": [M] of [lower, upper]}`.
    """
    point, interval = _estimates((scores,), lambda s: _fraction_above(s, taus), reps, seed)
    return {"tau": rounded(taus), "fraction": rounded(point), "fraction_ci": [rounded(p) for p in interval.T]}


def rounded(values) -> list[float]:
    """Host floats for JSON, rounded to 4 decimals, from an array or iterable of numbers (flattened).

    Args:
      values (Any): an array or iterable of numbers, any shape.

    Returns:
      The flattened values as Python floats, rounded to 4 decimals.
    """
    return [round(float(v), 4) for v in np.ravel(values)]
