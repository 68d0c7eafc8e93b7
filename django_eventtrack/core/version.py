"""The package's version, in a module of its own: the root package (the public API) re-exports
it and the HTTP layer's ``User-Agent`` names it, so no module has to import the root."""

__version__ = "0.1.0"
