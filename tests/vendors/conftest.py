"""Fixtures of the vendor tests: an adapter and an event built without a network, a user,
and requests to the sandbox over HTTP (``client`` is a requests session here, not Django's
test client: use ``admin_client`` or ``django.test.Client()`` for pages)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser

from django_eventtrack.conf import VendorConfig, get_config
from django_eventtrack.core.event import TrackedEvent
from django_eventtrack.sandbox import Sandbox
from django_eventtrack.sandbox.primedata import PrimeDataSchemas
from django_eventtrack.vendors import VendorAdapter
from tests.sandbox.helpers import client, send  # noqa: F401  (fixtures)
from tests.vendors.helpers import (
    CREDENTIALS,
    PURCHASE_PROPERTIES,
    VISITOR,
    WHEN,
    AdapterFactory,
    EventFactory,
)


@pytest.fixture
def make_adapter() -> AdapterFactory:
    """An adapter for ``vendor`` with test credentials; keywords override the config."""

    def make(vendor: str, **config: Any) -> VendorAdapter:
        adapter = get_config().adapters[vendor]
        config.setdefault("api_url", adapter.default_api_url)
        config.setdefault("visitor_ids", get_config().vendors[vendor].visitor_ids)
        config.setdefault("options", {key: d for key, (_, d) in adapter.own_settings.items()})
        return adapter(VendorConfig(name=vendor, credentials=CREDENTIALS[vendor], **config))

    return make


@pytest.fixture
def make_event() -> EventFactory:
    """A ``product.purchased`` by :data:`VISITOR`; keywords override any part."""

    def make(
        name: str = "product.purchased",
        properties: dict[str, Any] | None = None,
        **options: Any,
    ) -> TrackedEvent:
        options.setdefault("identity", VISITOR)
        options.setdefault("timestamp", WHEN)
        return TrackedEvent.create(
            name, PURCHASE_PROPERTIES if properties is None else properties, **options
        )

    return make


@pytest.fixture
def user(django_user_model: type[AbstractBaseUser], transactional_db: None) -> Any:
    return django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="ada", email="ada@example.com", password="not-used"
    )


@pytest.fixture
def primedata_schemas(sandbox: Sandbox) -> PrimeDataSchemas:
    """The sandbox's PrimeData schemas as a new data source has them: none registered (the
    session's sandbox registers every type for the tests that are not about schemas)."""
    schemas: PrimeDataSchemas = sandbox.state("primedata")
    schemas.any_type = False
    return schemas
