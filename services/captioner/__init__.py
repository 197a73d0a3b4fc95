"""captioner: describes sampled keyframes (planned; see the captioner/indexer issue)."""
