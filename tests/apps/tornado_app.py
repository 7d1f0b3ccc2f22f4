"""A native Tornado app for the tornado-compat worker class."""
import asyncio
import os

import tornado.web


class Main(tornado.web.RequestHandler):
    def get(self):
        self.write("tornado %d" % os.getpid())


class Slow(tornado.web.RequestHandler):
    async def get(self):
        await asyncio.sleep(float(self.get_argument("s", "1")))
        self.write("slept")


class Echo(tornado.web.RequestHandler):
    def post(self):
        self.write(self.request.body)


app = tornado.web.Application([(r"/", Main), (r"/slow", Slow),
                               (r"/echo", Echo)])
