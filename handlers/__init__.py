"""Channel adapters and the one conversation pipeline every channel calls."""
