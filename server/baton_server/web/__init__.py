"""The HTTP port: the baton.v1 services over Connect and gRPC-Web, and the web apps' files."""
