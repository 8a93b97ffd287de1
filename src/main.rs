//! The `tandem` command: parse the QEMU-style command line, build the machine, run it.

use std::process::ExitCode;

use tandem::cli::{self, Command};
use tandem::machine::Machine;
use tandem::runloop::RunOptions;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tandem: {e}");
            return ExitCode::from(1);
        }
    };
    let config = match command {
        Command::Print(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Command::Run(config) => config,
        Command::Img(cmd) => return ExitCode::from(tandem::img::run(&cmd)),
        Command::Difftest(req) => {
            return match cli::difftest::run(&req) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tandem: {e}");
                    ExitCode::from(1)
                }
            };
        }
        Command::Exec(req) => {
            return match cli::exec::run(&req) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tandem: {e}");
                    ExitCode::from(1)
                }
            };
        }
    };
    tandem::signals::install();
    let result = Machine::new(config).and_then(|mut m| {
        m.run(RunOptions {
            watch_signals: true,
        })
    });
    match result {
        Ok(outcome) => {
            if let Some(msg) = outcome.message() {
                eprintln!("tandem: {msg}");
            }
            ExitCode::from(outcome.exit_status() as u8)
        }
        Err(e) => {
            eprintln!("tandem: {e}");
            ExitCode::from(1)
        }
    }
}
