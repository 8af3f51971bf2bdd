"""The launch blueprint: EHR and standalone launch, the OAuth callback, the JWKS."""
