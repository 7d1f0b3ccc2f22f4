"""App factories: narwhal 'factory:create_app()' and with literal args."""


def create_app(greeting="hello", punctuation="!", times=1):
    body = ((greeting + punctuation) * times).encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def failing_factory():
    raise RuntimeError("the factory refuses")
