//! Records the git revision udpchat is built from, for `--version`: `UDPCHAT_GIT_REV` is
//! the short hash of HEAD, with `-dirty` when tracked files differ from it, or `unknown`
//! without git or outside a checkout (a source tarball, `cargo install` from a registry).
//! It never fails the build: a missing revision is not worth refusing to build.

use std::path::Path;
use std::process::Command;

fn main() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    let rev = revision(Path::new(&dir)).unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=UDPCHAT_GIT_REV={rev}");
}

/// The short hash of HEAD, `-dirty` appended when a tracked file is modified; `None`
/// when git is missing or fails, or `dir` is not part of a checkout that tracks it.
fn revision(dir: &Path) -> Option<String> {
    // Only a checkout that tracks this crate counts: a tarball unpacked inside some other
    // repository would otherwise be given that repository's revision.
    git(dir, &["ls-files", "--error-unmatch", "Cargo.toml"])?;
    watch(dir);
    let hash = git(dir, &["rev-parse", "--short", "HEAD"])?;
    // `--no-optional-locks`: reading the state must not write the index under a build.
    let status = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    );
    let dirty = status.is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{hash}-dirty") } else { hash })
}

/// Tells cargo to run this script again only when the revision or the dirty state may
/// have changed, not on every build: HEAD and its reflog (a checkout, a commit, a reset),
/// the branch's ref and packed-refs (where a ref lives once packed), and the sources of
/// udpchat and of the workspace crates it is built from, whose edits make the tree dirty
/// (they recompile udpchat anyway, so watching them costs no extra build). A path that
/// does not exist is left out: cargo would take it as changed on every build.
fn watch(dir: &Path) {
    let mut git_paths = vec!["HEAD".to_owned(), "logs/HEAD".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        git_paths.push(branch);
    }
    git_paths.push("packed-refs".to_owned());
    for name in git_paths {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            emit(&dir.join(path));
        }
    }
    for source in [
        "src",
        "build.rs",
        "Cargo.toml",
        "../proto/src",
        "../impair/src",
        "../secure/src",
        "../stack/src",
        "../store/src",
        "../tui/src",
    ] {
        emit(&dir.join(source));
    }
}

/// One `rerun-if-changed` line, for a path that exists and is valid UTF-8.
fn emit(path: &Path) {
    if let (true, Some(path)) = (path.exists(), path.to_str()) {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// What `git ARGS` prints when run in `dir`, trimmed; `None` when git is missing, fails
/// or prints something other than UTF-8.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}
