"""A Django project in one file, served end to end (Debian's
python3-django)."""
import json
import os

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="narwhal-tests",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import (FileResponse, HttpResponse,  # noqa: E402
                         HttpResponseRedirect, JsonResponse)
from django.urls import path, reverse  # noqa: E402

DATA = os.environ.get("NARWHAL_TEST_DATA_FILE", __file__)


def index(request):
    return HttpResponse("hello django")


def article(request, year, slug):
    return HttpResponse("%d/%s at %s" % (year, slug, reverse(
        "article", args=[year, slug])))


def form(request):
    return HttpResponse("%s+%s" % (request.POST["a"], request.POST["b"]))


def api(request):
    data = json.loads(request.body)
    return JsonResponse({"received": data, "method": request.method})


def upload(request):
    f = request.FILES["file"]
    return HttpResponse("%s:%d" % (f.name, len(f.read())))


def download(request):
    return FileResponse(open(DATA, "rb"))


def go(request):
    return HttpResponseRedirect(reverse("index"))


urlpatterns = [
    path("", index, name="index"),
    path("articles/<int:year>/<slug:slug>/", article, name="article"),
    path("form/", form),
    path("api/", api),
    path("upload/", upload),
    path("download/", download),
    path("go/", go),
]

application = get_wsgi_application()
