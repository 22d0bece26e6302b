//! One seed reproduces one run; another seed gives another run.

use udpchat_sim::run;
use udpchat_sim::scenario::matrix;

#[test]
fn same_seed_same_trace() {
    for scenario in matrix(1) {
        let first = run(&scenario, 42);
        let again = run(&scenario, 42);
        assert_eq!(first.trace_hash, again.trace_hash, "{}", scenario.name);
        assert_eq!(first.elapsed, again.elapsed, "{}", scenario.name);
        assert_eq!(first.b.received, again.b.received, "{}", scenario.name);
    }
}

#[test]
fn different_seed_different_trace_when_the_network_is_random() {
    let lossy = &matrix(1)[2];
    assert_ne!(run(lossy, 1).trace_hash, run(lossy, 2).trace_hash);
}
