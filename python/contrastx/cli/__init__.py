"""Console entry points (``contrastx-*`` commands)."""
