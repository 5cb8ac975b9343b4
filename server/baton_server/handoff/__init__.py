"""Handoff controls: humans take sessions over from the AI agent and give them back."""
