#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    danegate::cli::main()
}
