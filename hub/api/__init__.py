"""The HTTP API and dashboard, built by `create_app` around a running hub."""
