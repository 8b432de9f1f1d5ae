fn main() {
    let status = lettergate::cli::main_entry();
    std::process::exit(status as i32);
}
