"""Example agents shipped with Baton (`baton serve --example-agent`)."""
