// mimalloc: a run of tens of thousands of letters is allocation-heavy JSON work, and glibc's
// malloc took a fifth of the cycles in the volume benchmark (see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

/// mimalloc's `mi_option_purge_delay` (v3's option list, `mimalloc.h`).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before it gives it back to the system, in ms.
/// mimalloc v3's default is 1000 ms: a long run frees and reallocates large blocks (the vector
/// of letters doubling, the population's generation) faster than that, and a 250,000-letter
/// run peaked at 602-613 MB instead of 480 (BENCHMARKS.md, "Scale").
#[cfg(feature = "mimalloc")]
const PURGE_DELAY_MS: std::ffi::c_long = 10;

fn main() {
    // Before any thread starts, as `mi_option_set` asks. `MIMALLOC_PURGE_DELAY` in the
    // environment, which mimalloc reads itself, is left to win.
    #[cfg(feature = "mimalloc")]
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called once, first thing in main, before any other thread exists.
        unsafe {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
    let status = cli::main_entry();
    std::process::exit(status as i32);
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    /// Option 15 is the purge delay: its default in this mimalloc is 1000 ms, which no other
    /// option of v3's list has. A mimalloc whose list moved fails here, not quietly.
    #[test]
    fn the_option_main_sets_is_mimallocs_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return;
        }
        // SAFETY: reads an option; main (which sets it) does not run in the test binary.
        let delay = unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            delay, 1000,
            "option 15 is not mimalloc's purge delay (1000 ms)"
        );
    }
}
