# The tornado-compat worker class's loop, run by the core through
# api->call_python (the build turns this file into driver_py.h).  As
# Gunicorn's TornadoWorker: a Tornado IOLoop serves the worker's sockets,
# a tornado.web.Application as it is, any other app (WSGI) through
# tornado.wsgi.WSGIContainer.  Unlike it, max_requests counts requests,
# not connections, and a graceful stop waits for the requests in flight.
import asyncio
import importlib
import logging

# poll this often while a graceful stop waits for requests in flight
_STOP_POLL = 0.05


def init(worker):
    """In the worker, before it says it is ready: a missing Tornado is a
    boot failure with one clear line, not a crash loop."""
    try:
        for name in ("tornado.httpserver", "tornado.web", "tornado.wsgi"):
            importlib.import_module(name)
    except ImportError as e:
        raise RuntimeError("the tornado-compat worker class needs Tornado "
                           "(%s): apt-get install python3-tornado, or use "
                           "another -k" % e) from None


def _server_class():
    from tornado import httpserver

    class Server(httpserver.HTTPServer):
        """Counts the requests in flight (for a graceful stop) and those
        served (for max_requests)."""

        def initialize(self, *args, worker=None, **kw):
            super().initialize(*args, **kw)
            self.worker = worker
            self.in_flight = 0

        def start_request(self, server_conn, request_conn):
            # Tornado asks for the next request's delegate as soon as a
            # connection is free, long before (or without) its head: a
            # request is in flight from its head to its response's end
            req = _Request(self, super().start_request(server_conn,
                                                       request_conn))
            finish = request_conn.finish

            def finish_and_count():
                try:
                    return finish()
                finally:
                    req.end()

            request_conn.finish = finish_and_count
            return req

    return Server


class _Request(object):
    """A request's message delegate, counting it in flight from its head
    to the end of its response, or until the client leaves."""

    def __init__(self, server, inner):
        self.server = server
        self.inner = inner
        self.state = 0  # 1: in flight, 2: ended

    def end(self):
        if self.state == 1:
            self.state = 2
            self.server.in_flight -= 1
            self.server.worker.handle_request()

    def headers_received(self, start_line, headers):
        if self.state == 0:
            self.state = 1
            self.server.in_flight += 1
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk):
        return self.inner.data_received(chunk)

    def finish(self):
        return self.inner.finish()

    def on_connection_close(self):
        try:
            return self.inner.on_connection_close()
        finally:
            self.end()


def _quiet_quit(record):
    """A quick stop raises SystemExit in the app; Tornado would log it as
    an uncaught exception before it ends the loop."""
    return not (record.exc_info and record.exc_info[0] is SystemExit)


def run(worker):
    from tornado import ioloop, web, wsgi

    logging.getLogger("tornado.application").addFilter(_quiet_quit)
    asyncio.set_event_loop(asyncio.new_event_loop())
    loop = ioloop.IOLoop.current()
    app = worker.wsgi
    if not isinstance(app, web.Application):
        app = wsgi.WSGIContainer(app)
    cfg = worker.cfg
    keepalive = cfg.keepalive
    options = {"no_keep_alive": keepalive <= 0}
    if keepalive > 0:
        options["idle_connection_timeout"] = keepalive
    if cfg.limit_request_body > 0:
        options["max_body_size"] = cfg.limit_request_body
    server = _server_class()(app, worker=worker, **options)
    server.add_sockets(worker.sockets)
    stopping = []

    async def close_and_leave():
        try:
            await server.close_all_connections()
        finally:
            loop.stop()

    def graceful():
        # stop accepting; idle keep-alive connections go once the
        # requests in flight are done, or at graceful_timeout
        server.stop()
        deadline = loop.time() + max(cfg.graceful_timeout - 0.5, 0.1)
        loop.call_at(deadline + 1.0, loop.stop)

        def check():
            if server.in_flight <= 0 or loop.time() >= deadline:
                loop.add_callback(close_and_leave)
            else:
                loop.call_later(_STOP_POLL, check)

        check()

    def on_wakeup(fd, events):
        how = worker.should_stop()
        if how == 2:
            loop.stop()
        elif how == 1 and not stopping:
            stopping.append(how)
            graceful()

    loop.add_handler(worker.wakeup_fd, on_wakeup, ioloop.IOLoop.READ)
    worker.notify()
    beat = ioloop.PeriodicCallback(worker.notify,
                                   worker.heartbeat_interval * 1000)
    beat.start()
    how = worker.should_stop()
    if how == 0:
        loop.start()
    beat.stop()
    loop.remove_handler(worker.wakeup_fd)
    return 0
