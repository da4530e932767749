"""The dispatcher service (servers; active on the Raft leader only): claims each tick in Raft,
publishes runs to their target nodes, collects acks, output and results, and records them."""
