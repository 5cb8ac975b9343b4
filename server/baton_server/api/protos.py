"""The generated baton.v1 modules, imported once under short names."""

from baton.v1 import message_pb2 as pb
from baton.v1 import request_response_pb2 as rr
from baton.v1 import service_pb2 as svc
from baton.v1 import service_pb2_grpc as svc_grpc

__all__ = ["pb", "rr", "svc", "svc_grpc"]
