"""`pgqueue-enricher demo` and what it is built from: the command, the drawing renderer, the
sample project, and the row builder the tests and benches share. Nothing is imported here, so
importing a part (the row builder) does not load the renderer or the worker."""
