"""The benchmark suite behind `metaq bench`: metaq_jax beside a PyTorch reference.

It lives in the package (not in the top-level `benchmarks/` folder) so that an installed
`metaq bench` works without a source checkout. `torch_reference` and `gate` need torch
(the `bench` extra); the rest needs only metaq_jax. `benchmarks/RESULTS.md` keeps the numbers.
"""
