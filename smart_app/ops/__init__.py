"""Operations: the PHI-free audit trail, redacted logging, configuration checks."""
