//! The `lore` command-line tool. All logic lives in the library; this binary parses arguments,
//! renders results and maps errors to exit codes.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    lore::allocator::route_tree_sitter();
    cli::main()
}
