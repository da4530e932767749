"""The executor service (every node): subscribes to runs for its node and tags, starts each
execution id at most once, streams output back, serves full output, and re-sends results
until the leader has committed them."""
