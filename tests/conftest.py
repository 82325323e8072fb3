from tests.jsnode import node  # noqa: F401  (the fixture every interop test uses)
