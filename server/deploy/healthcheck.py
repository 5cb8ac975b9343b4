"""Container health check: grpc.health.v1.Health/Check on this container's Baton server.

Exit 0 when the server answers SERVING, 1 otherwise. Plaintext by default; when the server
serves TLS (BATON_TLS_CERT), the check trusts that certificate (or BATON_HEALTHCHECK_CA) and
expects the name BATON_HEALTHCHECK_TLS_NAME (default: localhost). Mutual TLS is not covered:
override the HEALTHCHECK then. (A later `baton health` CLI command may replace this script.)
"""

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

target = os.environ.get(
    "BATON_HEALTHCHECK_TARGET", f"127.0.0.1:{os.environ.get('BATON_PORT', '8800')}"
)
ca_file = os.environ.get("BATON_HEALTHCHECK_CA") or os.environ.get("BATON_TLS_CERT")
if ca_file:
    with open(ca_file, "rb") as pem:
        credentials = grpc.ssl_channel_credentials(root_certificates=pem.read())
    name = os.environ.get("BATON_HEALTHCHECK_TLS_NAME", "localhost")
    channel = grpc.secure_channel(target, credentials, [("grpc.ssl_target_name_override", name)])
else:
    channel = grpc.insecure_channel(target)
try:
    with channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=3
        )
except grpc.RpcError as error:
    print(f"unhealthy: {error.code().name}: {error.details()}", file=sys.stderr)
    sys.exit(1)
status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
print(status)
sys.exit(0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1)
