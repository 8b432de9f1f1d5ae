// mimalloc: a run of tens of thousands of letters is allocation-heavy JSON work, and glibc's
// malloc took a fifth of the cycles in the volume benchmark (see BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

fn main() {
    let status = cli::main_entry();
    std::process::exit(status as i32);
}
