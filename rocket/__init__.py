"""rocket: Rocket Launching (Zhou et al., AAAI 2018) in JAX/Flax."""

__version__ = "0.1.0"
