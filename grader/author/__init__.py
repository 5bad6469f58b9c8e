"""author stage."""
