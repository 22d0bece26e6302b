//! Deterministic simulation of udpchat: two protocol endpoints, the impairment between
//! them in each direction, and virtual time. One seed reproduces one run exactly.
//!
//! The harness (after quinn-proto's `Pair` and str0m's `progress`) repeatedly jumps
//! virtual time to the earliest of the two sessions' timers and the two links' release
//! times, delivers what is due, and lets each side answer. Nothing sleeps; a run of
//! minutes of virtual time takes milliseconds.
//!
//! A run's [`Outcome`] is judged by [`Outcome::violations`]: in order, exactly once,
//! every message ends delivered or failed, and after the network heals everything not
//! failed is delivered. A failing seed is printed with the command that replays it:
//! `UDPCHAT_SIM_SEED=<seed> cargo test -p udpchat-sim`.
//!
//! - [`harness`]: [`Scenario`] and [`run`].
//! - [`scenario`]: the fault matrix.
//! - [`outcome`]: what a run produced and the checks.
//! - [`summary`]: many seeds on all cores, and the figures we print.
//! - [`trace`]: the trace hash and the tail shown on failure.
#![forbid(unsafe_code)]

mod file;
pub mod harness;
pub mod outcome;
pub mod scenario;
pub mod summary;
pub mod trace;

pub use harness::{run, sub_seed, Scenario, SimSecurity};
pub use outcome::{Leaving, Outcome, SideOutcome};
pub use summary::{run_seeds, Summary};
