"""Figures, one module per stage; rule scripts read their inputs, call these and save."""
