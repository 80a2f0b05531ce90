"""reunite: face matching that helps reunite lost people with their families."""

__version__ = "0.1.0"
