"""The one seam with BentoML's internals (service/bentoml_seam.py): the version it was written for, and the
middleware stack it builds, outermost first."""

from __future__ import annotations

import subprocess
import sys

import bentoml

from service import middleware
from service.access import AccessMiddleware
from service.bentoml_seam import BENTOML_VERSION, middleware_classes
from service.service import Senpos
from service.settings import SETTINGS

from .conftest import REPO


def test_bentoml_is_pinned_to_the_version_the_seam_was_written_for():
    assert bentoml.__version__ == BENTOML_VERSION
    assert f'"bentoml=={BENTOML_VERSION}"' in (REPO / "pyproject.toml").read_text()


def test_an_unsupported_bentoml_stops_senpos_with_a_clear_message():
    code = "import bentoml; bentoml.__version__ = '1.5.0'; import service.service"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "senpos was written against bentoml==" in result.stderr and "bentoml==1.5.0" in result.stderr
    assert "pip install -c constraints.txt" in result.stderr


def test_the_middleware_stack_in_order():
    front = Senpos.to_asgi()
    assert isinstance(front, AccessMiddleware)  # keys checked before anything else runs
    app = front.app
    assert isinstance(app, middleware.ShedLoadMiddleware)  # refusals before any of BentoML's layers
    names = [c.__name__ for c in middleware_classes(app.app)]
    assert names == ["RunnerTrafficMetricsMiddleware", "OpenTelemetryMiddleware", "TimeoutMiddleware",
                     "MaxConcurrencyMiddleware", "RebalanceMiddleware", "JsonOnlyMiddleware", "BodyLimitMiddleware",
                     "RetryAfterMiddleware", "GZipMiddleware", "ContextMiddleware"]
    timeouts = [m for m in app.app.user_middleware if m.cls.__name__ == "TimeoutMiddleware"]
    assert [m.cls for m in timeouts] == [middleware.TimeoutMiddleware]  # ours, whose timer is cancelled
    assert timeouts[0].kwargs["timeout"] == SETTINGS.timeout_s
