"""Use cases: transport-free operations the gRPC servicers (and later the engine) call."""
