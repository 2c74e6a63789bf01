"""RQ jobs: searches and ingests run in workers, never in a web request."""
