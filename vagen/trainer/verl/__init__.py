"""trainer/verl."""
