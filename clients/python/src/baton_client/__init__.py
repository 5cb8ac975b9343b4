"""Python client for Baton.

The generated code lives in the `baton.v1` package (its imports follow the proto paths); this
package is the place for the hand-written helpers built on top of it.
"""

from baton.v1 import message_pb2, request_response_pb2, service_pb2_grpc

__all__ = ["message_pb2", "request_response_pb2", "service_pb2_grpc"]
