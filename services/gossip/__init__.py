"""The gossip service (every node): cluster membership, node tags and the executors each node
offers. Answers member queries on its query port and publishes member events locally."""
