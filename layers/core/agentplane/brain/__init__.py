"""The brain: agent turns that call the model and propose actions."""
