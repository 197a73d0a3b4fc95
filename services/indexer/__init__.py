"""indexer: embeds captions and writes k-NN vectors to OpenSearch (planned)."""
