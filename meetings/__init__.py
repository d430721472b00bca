"""Giao Ban: the domain of a city administration's daily meetings."""
