"""The notebooks, and `python -m notebooks.execute`, which runs them and saves their outputs."""
