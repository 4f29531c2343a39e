"""The socket loop around the target logic: receive, ``Target.process``, send.

Single-threaded and in order, like vblade. On a ``RawTransport`` the loop
works on the packet socket itself (a dup of its descriptor): it drains the
kernel queue with non-blocking ``recv`` and sleeps in ``poll`` only when the
queue is empty, so a busy target makes one system call per frame each way.
Any other transport (``MemoryEndpoint`` in tests) goes through its
``recv``/``send``. ``stop()`` may be called from a signal handler or another
thread; the loop then returns promptly.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import threading

from .logic import Target

_POLL_STOP_CHECK = 0.2  # seconds between stop checks on transports without a descriptor


class TargetServer:
    def __init__(self, target: Target, transport, log=None) -> None:
        self.target = target
        self.transport = transport
        self.log = log
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self.frames_in = 0
        self.frames_out = 0
        self.send_errors = 0
        self._done = threading.Event()

    def stop(self) -> None:
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def announce(self) -> None:
        for frame in self.target.announce():
            self._send_slow(frame)

    def serve_forever(self) -> None:
        """Run until ``stop()``; the transport and image stay open."""
        try:
            if hasattr(self.transport, "fileno") and _is_packet_socket(self.transport):
                self._serve_socket()
            else:
                self._serve_transport()
        finally:
            self.target.complete_pending()
            self._done.set()

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- loops ---------------------------------------------------------------

    def _serve_socket(self) -> None:
        sock = socket.socket(fileno=os.dup(self.transport.fileno()))
        try:
            sock.setblocking(False)
            self._loop(sock)
        finally:
            sock.close()

    def _loop(self, sock: socket.socket) -> None:
        target = self.target
        process = target.process
        recv = sock.recv
        send = sock.send
        bufsize = target.mtu + 14 + 256
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        burst = 0
        frames_in = frames_out = 0
        try:
            while not self._stopping:
                try:
                    frame = recv(bufsize)
                except BlockingIOError:
                    # The queue is empty: finish an acknowledged async
                    # write, then sleep until a frame or stop() arrives.
                    if target._pending is not None:
                        target.complete_pending()
                    burst = 0
                    poller.poll()
                    continue
                except InterruptedError:
                    continue
                frames_in += 1
                for reply in process(frame, burst):
                    try:
                        send(reply)
                        frames_out += 1
                    except BlockingIOError:
                        self._send_blocking(sock, reply)
                        frames_out += 1
                    except OSError as exc:
                        self._send_failed(exc)
                burst += 1
        finally:
            self.frames_in += frames_in
            self.frames_out += frames_out

    def _send_blocking(self, sock, reply) -> None:
        out = select.poll()
        out.register(sock.fileno(), select.POLLOUT)
        while not self._stopping:
            out.poll(1000)
            try:
                sock.send(reply)
                return
            except BlockingIOError:
                continue
            except OSError as exc:
                self._send_failed(exc)
                return

    def _send_failed(self, exc: OSError) -> None:
        # e.g. EMSGSIZE for a reply beyond the MTU (the oversize-scnt-accepted quirk)
        self.send_errors += 1
        if self.log is not None and self.send_errors <= 10:
            print(f"aoeconform target: reply not sent: {os.strerror(exc.errno or errno.EIO)}", file=self.log, flush=True)

    def _serve_transport(self) -> None:
        transport = self.transport
        target = self.target
        burst = 0
        while not self._stopping:
            frame = transport.recv(0)
            if frame is None:
                target.complete_pending()
                burst = 0
                frame = transport.recv(_POLL_STOP_CHECK)
                if frame is None:
                    continue
            self.frames_in += 1
            for reply in target.process(bytes(frame), burst):
                self._send_slow(reply)
            burst += 1

    def _send_slow(self, reply) -> None:
        try:
            self.transport.send(bytes(reply))
            self.frames_out += 1
        except OSError as exc:
            self._send_failed(exc)


def _is_packet_socket(transport) -> bool:
    try:
        fd = transport.fileno()
    except (AttributeError, OSError, NotImplementedError):
        return False
    try:
        probe = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    try:
        return probe.family == getattr(socket, "AF_PACKET", -1)
    finally:
        probe.close()


def receive_buffer_bytes(bufcnt: int, mtu: int) -> int:
    """Socket receive buffer that holds ``bufcnt`` full frames (rule 19).

    The kernel charges each frame its buffer's true size, which for a
    jumbo frame on veth is about twice the payload; 8 MiB is the floor."""
    return max(8 << 20, bufcnt * 2 * (mtu + 14 + 512))


def open_raw_transport(iface: str, bufcnt: int, mtu_hint: int = 9000):
    from aoeconform.transport.raw import RawTransport

    return RawTransport(iface, rcvbuf=receive_buffer_bytes(bufcnt, mtu_hint))


def run_in_thread(target: Target, transport) -> tuple[TargetServer, threading.Thread]:
    """Start serving in a daemon thread (for tests); call ``server.stop()`` and join."""
    server = TargetServer(target, transport, log=sys.stderr)
    thread = threading.Thread(target=server.serve_forever, name="aoeconform-target", daemon=True)
    server.announce()
    thread.start()
    return server, thread
