//! One module per command.

mod demo;
mod events;
mod hunt;
mod rules;
mod scope;
mod simulate;
mod store;
mod watch;

use crate::args::{Command, RulesCommand};
use crate::exit::{Failure, Status};

/// Runs a command.
pub fn run(command: Command) -> Result<Status, Failure> {
    match command {
        Command::Hunt(args) => hunt::run(args),
        Command::Scope(args) => scope::run(args),
        Command::Watch(args) => watch::run(*args),
        Command::Simulate(args) => simulate::run(args),
        Command::Eval {
            truth,
            results,
            campaigns,
            json,
        } => simulate::eval(&truth, &results, campaigns.as_ref(), json),
        Command::Demo { out } => demo::run(out),
        Command::Export {
            store,
            format,
            output,
        } => store::export(&store, &format, output.as_ref()),
        Command::Serve {
            store,
            listen,
            token_file,
            host_names,
        } => store::serve(store, listen, token_file.as_ref(), host_names),
        Command::Events {
            paths,
            mapping,
            case,
        } => events::run(&paths, mapping.as_ref(), &case),
        Command::Rules {
            command:
                RulesCommand::Check {
                    paths,
                    json,
                    placeholders,
                },
        } => rules::check(&paths, json, placeholders.as_ref()),
    }
}
