"""Views of the annotation app."""
