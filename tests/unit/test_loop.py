"""common/loop.py over real ipc sockets: a handler that raises on one message answers it with an
internal error, counts it and serves the next; an exception in the service's own work (a timer)
still stops the loop with exit code 70, for supervisord to restart it."""

import zmq

from common import config, messages as m, wire
from common.loop import EXIT_CRASH, Loop


def loop_in(tmp_path):
    conf = config.load(env={"PYKRON_NODE_NAME": '"t1"', "PYKRON_NODE_RUN_DIR": f'"{tmp_path}/run"',
                            "PYKRON_NODE_DATA_DIR": f'"{tmp_path}/data"'})
    return Loop(conf, service="test")


def test_a_handler_that_raises_answers_internal_and_the_loop_serves_the_next(tmp_path):
    loop = loop_in(tmp_path)
    seen = []

    def on_request(env):
        seen.append(env.msg.name)
        if env.msg.name == "poison":
            raise OverflowError("Python int too large to convert to SQLite INTEGER")
        loop.reply(router, env, {"name": env.msg.name})

    endpoint = f"ipc://{tmp_path}/run/test.requests"
    router = loop.socket(zmq.ROUTER, "requests", on=on_request, bind=[endpoint])
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    for name in ("poison", "poison", "fine"):
        dealer.send_multipart(wire.encode(m.JobGet(name=name), "client"))
    loop.after(1500, lambda: loop.stop(0))
    assert loop.run() == 0
    replies = [wire.decode(dealer.recv_multipart()) for _ in range(3)]
    dealer.close(0)
    ctx.term()
    assert seen == ["poison", "poison", "fine"]
    assert [r.type for r in replies] == ["error", "error", "ok"]
    assert replies[0].msg.code == "internal" and "OverflowError" in replies[0].msg.message
    assert replies[2].msg.result == {"name": "fine"}
    assert loop.dropped["internal"] == 2


def test_an_error_in_the_services_own_work_still_stops_it(tmp_path):
    loop = loop_in(tmp_path)

    def persist():
        raise OSError(28, "No space left on device")

    loop.after(10, persist)
    assert loop.run() == EXIT_CRASH


def test_an_address_still_in_use_is_bound_again_shortly(tmp_path):
    """A PUB unbound and bound again (a key book change) may find its address held a moment
    longer (ZeroMQ closes the listener in its I/O thread): the loop tries again, not crashes."""
    loop = loop_in(tmp_path)
    ctx = zmq.Context()
    holder = ctx.socket(zmq.PUB)
    holder.setsockopt(zmq.LINGER, 0)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    endpoint = f"tcp://127.0.0.1:{port}"
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    loop._bind_again(pub, endpoint)  # held: a retry is timed, nothing raised
    loop.after(100, holder.close)
    loop.after(600, lambda: loop.stop(0))
    assert loop.run() == 0
    assert pub.getsockopt(zmq.LAST_ENDPOINT).decode() == endpoint
    pub.close()
    ctx.term()
