//! End-to-end test helpers (filled in by the TFTP issue).
