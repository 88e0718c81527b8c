"""Views of the evaluation app."""
