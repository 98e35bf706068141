from metaq_jax.cli import main

main()
