"""indexer: captions and alerts into OpenSearch, and semantic search over them.

- ``settings``: ``IndexerSettings`` (``VSA_INDEXER_``), ``SearchSettings`` (``VSA_SEARCH_``);
- ``mapping``: index mappings, templates and documents (pure; documented in
  docs/search-index.md);
- ``bulk``: bulk-response classification and back-off (pure);
- ``embedder``: all-MiniLM-L6-v2 through sentence-transformers, offline;
- ``store``: the OpenSearch client, templates and indices, bulk requests;
- ``handler`` / ``service``: the batch handler and the ``vsa indexer`` process;
- ``search`` / ``api``: validated queries, k-NN with filters (+ BM25 fusion), the HTTP endpoint;
- ``cli``: ``vsa indexer``, ``vsa search``, ``vsa search-api``.
"""
