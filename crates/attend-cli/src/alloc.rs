//! Allocator settings of the `attend` binary (mimalloc).

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_purge_delay` in the mimalloc v3 that `libmimalloc-sys` builds
/// (its Rust constants follow v2's numbering, so they cannot be used).
const PURGE_DELAY: mi_option_t = 15;

/// Never hand freed pages back to the OS. candle allocates a fresh output per
/// op, several MiB each for a tagger batch; with the default purge delay
/// those pages go back to the OS between steps and every step faults them
/// in and zeroes them again (about 5% of a training profile in the kernel's
/// `clear_page`, and training ran 10-15% slower). The cost: the process
/// keeps its peak heap (about 15 MiB more RSS for the default tagger).
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
pub fn keep_freed_pages() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mimalloc's option setter, safe to call at any time.
        unsafe { mi_option_set(PURGE_DELAY, -1) }
    }
}

/// The purge delay in force, milliseconds (-1: never).
pub fn purge_delay() -> i64 {
    // SAFETY: mimalloc's option getter.
    unsafe { mi_option_get(PURGE_DELAY) as i64 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_option_index_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            eprintln!("skipped: MIMALLOC_PURGE_DELAY is set");
            return;
        }
        // v3's documented default for the purge delay is 1000 ms; no other
        // option defaults to it, so this catches a renumbering.
        assert_eq!(super::purge_delay(), 1000);
        super::keep_freed_pages();
        assert_eq!(super::purge_delay(), -1);
    }
}
