//! Tests that need a part this machine may lack (a Docker engine, a
//! registry, python's `grpcio`) say loudly that they did not run, rather
//! than pass silently — and under `HIFI_TESTS_REQUIRE_ALL=1` (CI, which
//! installs every part) a missing part fails the test instead.

use std::io::Write;

/// The variable that turns every skip into a failure.
pub const REQUIRE_ALL: &str = "HIFI_TESTS_REQUIRE_ALL";

/// Reports that `test` cannot run because of `why`, with `hint` saying how
/// to get the missing part. Panics (fails the test) when
/// [`REQUIRE_ALL`] is set to anything but `0` or empty.
pub fn skip(test: &str, why: &str, hint: &str) {
    if std::env::var(REQUIRE_ALL).is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "test `{test}` cannot run: {why} ({hint}); {REQUIRE_ALL} is set, so that is a failure"
        );
    }
    // Straight to stderr: the harness captures only print!/eprint!.
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED test `{test}`: {why}\n*** ({hint})\n"
    );
}
