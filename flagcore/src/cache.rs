//! The per-user cache shared by every checkout: pinned libtorch and public data assets.
//!
//! `$FLAGOPEN_CACHE`, else `$XDG_CACHE_HOME/flagopen`, else `~/.cache/flagopen`. `xtask`
//! includes this file by path (it needs no other part of `flagcore`).

use std::path::PathBuf;

/// The cache folder, or `None` when no variable names a home for it.
pub fn cache_root() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("FLAGOPEN_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("flagopen")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("flagopen")))
}

/// Marker file an asset folder holds once fetched, verified and unpacked completely.
pub const READY: &str = "READY";

/// The unpacked folder of a fetched asset (`<cache>/assets/<name>`), if it is complete.
/// Tests on real data call this and skip (saying so) when it is `None`.
pub fn asset_dir(name: &str) -> Option<PathBuf> {
    let dir = cache_root()?.join("assets").join(name);
    dir.join(READY).is_file().then_some(dir)
}
