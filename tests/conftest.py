"""Shared pytest plugins. Fixture modules live beside the tests and are registered here."""

pytest_plugins = ["tests.anvil_fixtures", "tests.kubo_fixtures", "tests.compose_fixtures", "tests.cluster_fixtures"]
