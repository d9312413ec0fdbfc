//! What the browser tests share: Debian's Chromium and the
//! `playwright-core` driver in `tests/browser/`. Both are installed by
//! `scripts/test-deps.sh`; if either is missing a browser test FAILS,
//! saying what to run: a browser test that skips silently would let a
//! browser-facing feature break unnoticed.

use std::path::PathBuf;

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Chromium's path (`CHROMIUM`, else `/usr/bin/chromium`).
pub fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium not found at {}: browser tests need a real browser. \
         Install it with `apt-get install chromium` (scripts/test-deps.sh does), \
         or set CHROMIUM to its path.",
        path.display()
    );
    path
}

/// `tests/browser/`, where the driver scripts and their packages are.
pub fn driver_dir() -> PathBuf {
    let dir = repo().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser \
         (scripts/test-deps.sh does)"
    );
    dir
}
