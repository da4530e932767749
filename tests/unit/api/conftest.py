"""services/api under Falcon's TestClient, with fakeclient.FakeClient injected into create_app
in place of the ZeroMQ client."""

import falcon.testing
import pytest

from fakeclient import FakeClient, make_conf
from services.api.app import create_app


@pytest.fixture
def fake():
    return FakeClient()


@pytest.fixture
def api(fake):
    return falcon.testing.TestClient(create_app(make_conf(), client=fake))


@pytest.fixture
def app_with(fake):
    """A TestClient for a differently configured node (token, name), over the same fake."""
    def make(**conf):
        return falcon.testing.TestClient(create_app(make_conf(**conf), client=fake))
    return make
