"""What every layer of the service shares: its settings."""
