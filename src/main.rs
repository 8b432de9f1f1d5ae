// mimalloc: a run of tens of thousands of letters is allocation-heavy JSON work, and glibc's
// malloc took a fifth of the cycles in the volume benchmark (see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let status = lettergate::cli::main_entry();
    std::process::exit(status as i32);
}
