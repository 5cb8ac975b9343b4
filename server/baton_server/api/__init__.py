"""gRPC API layer: servicers (validate, map, call), error mapping, server assembly."""
