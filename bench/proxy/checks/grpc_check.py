"""A real gRPC client and server (grpcio) through hifi's proxy.

usage: grpc_check.py serve PORT        -- a gRPC server with /hifi.Echo/Say (echo)
                                          and /hifi.Echo/Fail (INTERNAL)
       grpc_check.py call TARGET N     -- N calls of Say, then one of Fail;
                                          exits 1 unless they answer as expected
No generated code: the methods carry raw bytes.
"""
import sys
from concurrent import futures

import grpc


def identity(b):
    return b


def serve(port):
    def say(request, context):
        return request

    def fail(request, context):
        context.abort(grpc.StatusCode.INTERNAL, "failing on purpose")

    handler = grpc.method_handlers_generic_handler(
        "hifi.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(say, identity, identity),
            "Fail": grpc.unary_unary_rpc_method_handler(fail, identity, identity),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def call(target, n):
    with grpc.insecure_channel(target) as channel:
        say = channel.unary_unary("/hifi.Echo/Say", identity, identity)
        for i in range(n):
            msg = f"hello {i}".encode()
            got = say(msg, timeout=10)
            if got != msg:
                print(f"Say answered {got!r}, expected {msg!r}")
                return 1
        fail = channel.unary_unary("/hifi.Echo/Fail", identity, identity)
        try:
            fail(b"x", timeout=10)
            print("Fail succeeded, expected INTERNAL")
            return 1
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.INTERNAL:
                print(f"Fail answered {e.code()}, expected INTERNAL")
                return 1
    print(f"grpc: {n} calls echoed, the failing call answered INTERNAL")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(call(sys.argv[2], int(sys.argv[3])))
