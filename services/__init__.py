"""Service layer: plain Python, no azure.functions imports, unit-testable without a host."""
