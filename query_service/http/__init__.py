"""The HTTP edge, on the event loop: routes, the SSE stream, responses, errors, middleware,
dependencies, stream tickets, and the loop's view of applied positions (waiters, subscribers)."""
