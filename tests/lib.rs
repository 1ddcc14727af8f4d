//! Helpers for the end-to-end tests: locate the built binaries and run them in temp dirs.

use std::path::PathBuf;

/// The path of a workspace binary built next to this test crate (cargo builds every workspace
/// binary before running integration tests of a crate that lists it as a dependency).
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}
