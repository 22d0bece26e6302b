//! Scenario tests, in the crate rather than in `tests/` because the teeth tests need the
//! test-only [`Mutation`](crate::session::Mutation) switch, which an integration test
//! cannot reach.

mod adversarial;
mod forge;
mod harness;
mod mitm;
mod scenarios;
mod teeth;
