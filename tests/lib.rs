//! Shared helpers live in `it/`; this crate only hosts the integration-test binary.
