//! The tests have teeth: deliberately broken endpoints must fail them.

use super::adversarial::{check_garbage_between_valid, check_mutations, check_replays};
use super::harness::Mode;
use crate::session::Mutation;

#[test]
fn without_a_replay_window_the_replay_check_fails() {
    for mode in [Mode::Pinned, Mode::Passphrase] {
        let err = check_replays(mode, Mutation::NoReplayWindow).unwrap_err();
        assert!(
            err.contains("accepted twice") || err.contains("delivered"),
            "{err}"
        );
    }
}

#[test]
fn marking_before_authentication_fails_the_garbage_check() {
    let err = check_garbage_between_valid(Mutation::MarkBeforeAuth).unwrap_err();
    assert!(err.contains("real packet 0"), "{err}");
}

#[test]
fn marking_before_authentication_fails_the_mutation_check() {
    let err = check_mutations(Mode::Pinned, Mutation::MarkBeforeAuth).unwrap_err();
    assert!(err.contains("rejected after its mutations"), "{err}");
}

#[test]
fn the_real_endpoint_passes_the_same_checks() {
    check_garbage_between_valid(Mutation::None).unwrap();
}
