"""Template bundles: skills and seed memory that users publish and install."""
