//! Retries with backoff and transparent Range resume (in progress).
