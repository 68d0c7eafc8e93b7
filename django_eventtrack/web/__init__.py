"""The web side: the middleware and how a visitor's identity is captured from a request."""
