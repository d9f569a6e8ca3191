//! Tests of the whole model against committed fixtures: parity with
//! `transformers` and the hub download path. They live in the library's own
//! test binary, so the workspace links one binary fewer.

mod batch;
mod hub;
mod parity;
