"""The Flask side: the launch flow, the risk page and operations endpoints, as blueprints."""
