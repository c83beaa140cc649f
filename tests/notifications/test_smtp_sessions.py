"""EmailChannel keeps an SMTP session for the next message, and never loses or repeats one
when the server has closed a kept session (a minimal SMTP server on a real socket, so the
test can count connections and close one on purpose)."""
import pytest

from services.notifications.channels import EmailChannel
from tests.notifications.local_server import LocalServer

SUBJECT = "缺席提醒"
BODY = "您未参加本月党员大会，请于两周内补学。"


class CountingSmtpServer(LocalServer):
    """Speaks just enough SMTP; counts connections, messages and QUITs. With
    `close_after_message`, it hangs up (without a word) after each message, as a server
    whose idle timeout ran out would."""

    def __init__(self, close_after_message: bool = False):
        self.close_after_message = close_after_message
        self.messages: list[bytes] = []
        self.quits = 0
        super().__init__(backlog=8)
        self.url = f"smtp://127.0.0.1:{self.port}"

    def serve(self, conn):
        conn.settimeout(5)
        reader = conn.makefile("rb")
        with conn, reader:
            conn.sendall(b"220 counting ready\r\n")
            while True:
                line = reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"QUIT":
                    self.quits += 1
                    conn.sendall(b"221 bye\r\n")
                    return
                if verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    content = b""
                    while not content.endswith(b"\r\n.\r\n"):
                        chunk = reader.readline()
                        if not chunk:
                            return
                        content += chunk
                    self.messages.append(content)
                    conn.sendall(b"250 queued\r\n")
                    if self.close_after_message:
                        return
                    continue
                conn.sendall(b"250 ok\r\n")



@pytest.fixture
def smtp_server(request):
    server = CountingSmtpServer(**getattr(request, "param", {}))
    yield server
    server.close()


def test_the_next_message_goes_on_the_session_kept_from_the_last(smtp_server):
    channel = EmailChannel(smtp_server.url)
    for n in range(3):
        assert channel.send(f"member{n}@example.cn", SUBJECT, BODY).startswith("email: accepted")
    assert (smtp_server.connections, len(smtp_server.messages)) == (1, 3)
    channel.close()
    for thread in smtp_server.threads[1:]:
        thread.join(5)
    assert smtp_server.quits == 1  # the kept session is ended politely


@pytest.mark.parametrize("smtp_server", [{"close_after_message": True}], indirect=True)
def test_a_kept_session_the_server_closed_costs_a_new_one_and_nothing_twice(smtp_server):
    channel = EmailChannel(smtp_server.url)
    channel.send("a@example.cn", SUBJECT, BODY)
    for thread in smtp_server.threads[1:]:
        thread.join(5)  # the server has hung up
    assert channel.send("b@example.cn", SUBJECT, BODY).startswith("email: accepted")
    assert smtp_server.connections == 2
    assert len(smtp_server.messages) == 2  # each message once: the dead session sent nothing


def test_a_session_idle_too_long_is_not_used_again(smtp_server):
    channel = EmailChannel(smtp_server.url)
    channel.IDLE_SECONDS = 0.0
    channel.send("a@example.cn", SUBJECT, BODY)
    channel.send("b@example.cn", SUBJECT, BODY)
    assert (smtp_server.connections, len(smtp_server.messages)) == (2, 2)


def test_after_close_a_session_is_ended_not_kept(smtp_server):
    """A send still finishing while the service stops must not leave a session open."""
    channel = EmailChannel(smtp_server.url)
    channel.close()
    channel.send("a@example.cn", SUBJECT, BODY)
    for thread in smtp_server.threads[1:]:
        thread.join(5)
    assert (smtp_server.connections, smtp_server.quits) == (1, 1)


def test_a_sender_of_more_than_one_line_is_refused_at_start():
    with pytest.raises(ValueError, match="one line"):
        EmailChannel("smtp://127.0.0.1:25", sender="组织部 <zzb@county.example>\r\nBcc: x@y.z")
