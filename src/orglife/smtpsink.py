"""The local SMTP server's handler (orglife/devservers.py SmtpSink: tests, benchmarks and the
demo): aiosmtpd storing each message in a Maildir as it came, with the envelope's sender and
recipients as X-MailFrom / X-RcptTo headers, like aiosmtpd's own Mailbox handler.

Mailbox parses every message, writes it out again through the email generator and fsyncs each
file (Python's mailbox module): two thirds of the sink's time under load, on a core the
services under test need (py-spy on bench/county_year.py). A stand-in for a mail server on
another machine needs neither: the bytes are written as received, and a crash of the sink
loses at most what a test was about to read. Run as
`python -m aiosmtpd -n -l HOST:PORT -c orglife.smtpsink.RawMaildir DIR`; this module imports
only the standard library and aiosmtpd, so the sink starts as fast as before."""
import itertools
import os
import socket
import time

from aiosmtpd.handlers import Mailbox


class RawMaildir(Mailbox):
    """aiosmtpd's Mailbox (the folders, the command line) without the parse, rewrite and fsync."""

    def __init__(self, mail_dir):
        super().__init__(mail_dir)  # creates tmp/, new/ and cur/
        self._serial = itertools.count()
        self._host = socket.gethostname().replace("/", "_").replace(":", "_")

    async def handle_DATA(self, server, session, envelope) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        added = (f"X-Peer: {session.peer}\r\nX-MailFrom: {envelope.mail_from}\r\n"
                 f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n").encode("utf-8")
        # Maildir's unique name, led by the time so that names sort in delivery order
        name = f"{time.time():.6f}.M{next(self._serial)}P{os.getpid()}.{self._host}"
        temporary = os.path.join(self.mail_dir, "tmp", name)
        with open(temporary, "wb") as file:
            file.write(added + content)
        os.rename(temporary, os.path.join(self.mail_dir, "new", name))  # seen whole or not
        return "250 OK"
