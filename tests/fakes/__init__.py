"""Test fakes (protocol-faithful stand-ins for external services)."""
