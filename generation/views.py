"""Views of the generation app."""
