"""The SMART App Launch 2.2 client: discovery, scopes, client auth, tokens, launch records."""
