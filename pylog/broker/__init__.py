"""The broker layer: the data directory and its topics (manager.py), producer state."""
