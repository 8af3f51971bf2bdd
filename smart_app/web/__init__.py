"""The Flask side: blueprints for the launch flow, the launch pages, the JWKS, and the CLI."""
