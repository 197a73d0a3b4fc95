"""The local stack: a real Kafka broker (KRaft) and a real OpenSearch with k-NN, as local processes."""
