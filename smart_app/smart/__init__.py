"""The SMART App Launch 2.2 client: discovery, scopes, client authentication, tokens, identity."""
