"""protoc plugin wrapper: runs grpc_tools' built-in grpc_python generator for buf.

grpcio-tools ships the gRPC Python generator only inside its bundled protoc, not as a
standalone `protoc-gen-*` binary, so buf cannot call it directly. This plugin receives buf's
CodeGeneratorRequest, hands the descriptors to grpc_tools.protoc and returns its output files.
"""

from __future__ import annotations

import pathlib
import sys
import tempfile

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    with tempfile.TemporaryDirectory() as tmp:
        workdir = pathlib.Path(tmp)
        descriptors = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        (workdir / "in.binpb").write_bytes(descriptors.SerializeToString())
        out = workdir / "out"
        out.mkdir()
        args = ["grpc_tools.protoc", f"--descriptor_set_in={workdir / 'in.binpb'}"]
        if request.parameter:
            args.append(f"--grpc_python_opt={request.parameter}")
        args.append(f"--grpc_python_out={out}")
        args.extend(request.file_to_generate)
        if protoc.main(args) != 0:
            response.error = "grpc_tools.protoc failed to generate gRPC Python code"
            return response
        for path in sorted(out.rglob("*.py")):
            generated = response.file.add()
            generated.name = path.relative_to(out).as_posix()
            generated.content = path.read_text()
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
