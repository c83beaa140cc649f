"""A TCP server on 127.0.0.1 for the channels' transport tests: real sockets, so a test can
count connections and have the far end answer, stay silent or hang up as it chooses."""
import socket
import threading


class LocalServer:
    """Accepts until closed; each connection is handled by `serve(conn)` in a thread of its
    own (threads[0] accepts, the others are the connections', in order)."""

    def __init__(self, backlog: int = 16):
        self.connections = 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(backlog)
        self.server.settimeout(0.1)  # accept() wakes to see `stopped`
        self.stopped = False
        self.port = self.server.getsockname()[1]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            thread = threading.Thread(target=self.serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def serve(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self):
        self.stopped = True
        self.threads[0].join(5)
        self.server.close()
