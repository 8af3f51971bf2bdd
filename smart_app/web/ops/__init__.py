"""Operations endpoints and response hardening: health checks, security headers, proxies."""
